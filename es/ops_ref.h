#pragma once
// CPU reference of every op the CUDA backend implements (cuda/cuda_ops.h), one function per
// kernel, on plain host arrays. These are the definitions the GPU tests (tests/gpu_ops_main.cpp)
// compare against, and the CPU side of the op-level step (es/step_ops.h), which is checked
// against the monolithic CPU forward (rwkv/forward.cpp): so each op here computes exactly what
// the matching lines of Forward::step / EggrollPerturbation / eggroll_gradient / Optimizer do.
//
// Conventions: row-major arrays; B rows ("batch", one per generation); C = n_embd; H heads of
// 64. A per-row vector parameter is (pointer, stride): row i reads p + i * stride (stride 0 =
// shared by all rows, stride n = one perturbed copy per row). State arrays are the BatchState
// layout: member `slot` of layer l starts at base + slot * slot_stride + layer_offset.
// Existing single-row references used here: layer_norm_row, wkv7_head (rwkv/forward.h).
#include <cstddef>
#include <cstdint>

#include "es/noise.h"

namespace eggroll {

// The EGGROLL noise of one step as the kernels see it: key fields of es/noise.h with the epoch
// bucket already computed (epoch_bucket(epoch, noise_reuse)).
struct NoiseSpec {
  uint64_t seed = 0;
  uint32_t epoch_bucket = 0;
  int rank = 1;
  NoiseDist dist = NoiseDist::Gaussian;
  float sigma = 0.f;
};

EGGROLL_HD NoiseKey noise_spec_key(const NoiseSpec& s, uint32_t param_id, uint32_t member) {
  NoiseKey k;
  k.seed = s.seed;
  k.param_id = param_id;
  k.epoch_bucket = s.epoch_bucket;
  k.pair = member_pair(member);
  return k;
}
// The spec of step `epoch` under a run's noise configuration.
inline NoiseSpec noise_spec(const NoiseConfig& c, uint64_t epoch) {
  NoiseSpec s;
  s.seed = c.seed;
  s.epoch_bucket = epoch_bucket(epoch, c.noise_reuse);
  s.rank = c.rank;
  s.dist = c.dist;
  s.sigma = c.sigma;
  return s;
}
// s_i sigma / sqrt(r) (== lowrank_scale of es/noise.h) and s_i sigma (== vector_scale).
EGGROLL_HD float noise_spec_lowrank_scale(const NoiseSpec& s, uint32_t member) {
  return member_sign(member) * s.sigma / sqrtf(static_cast<float>(s.rank));
}
EGGROLL_HD float noise_spec_vector_scale(const NoiseSpec& s, uint32_t member) { return member_sign(member) * s.sigma; }

// bf16 rounding of an fp32 value (round to nearest even), as the device's __float2bfloat16_rn.
float round_to_bf16(float x);

namespace ref {

// ---- model ops ------------------------------------------------------------------------------

// out[i, :] = emb[tokens[i], :] (emb [V, C] fp32, or bf16 bits when emb_bf16 != nullptr).
void embed_rows(const float* emb_f32, const uint16_t* emb_bf16, const int32_t* tokens, int64_t B, int64_t C,
                float* out);
// y[i] = LayerNorm(x[i]) * w + b for each of the B rows (eps: 1e-5 in the model).
void layer_norm_rows(const float* x, const float* w, int64_t w_stride, const float* b, int64_t b_stride, float* y,
                     int64_t B, int64_t n, float eps);
// Time-mix token shift: prev = state row of slots[i]; out[q][i] = xa + (prev - xa) * mu_q (q = r,w,k,v,a,g);
// then prev = xa. out is [6][B][C].
void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                 const float* const mu[6], const int64_t mu_stride[6], float* out, int64_t B, int64_t C);
// Channel-mix token shift: out = xf + (prev - xf) * mu; prev = xf.
void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                   const float* mu, int64_t mu_stride, float* out, int64_t B, int64_t C);
void tanh_inplace(float* x, int64_t n);
void sigmoid_inplace(float* x, int64_t n);
// w[i] = exp(-exp(-0.5) * sigmoid(w0 + w[i]))  (decay, in (0.545, 1))
void decay_rows(float* w, const float* w0, int64_t w0_stride, int64_t B, int64_t C);
// a[i] = sigmoid(a0 + a[i])
void sigmoid_bias_rows(float* a, const float* a0, int64_t a0_stride, int64_t B, int64_t C);
// v[i] += (v_first[i] - v[i]) * sigmoid(v0 + t[i])
void value_residual_rows(float* v, const float* v_first, const float* t, const float* v0, int64_t v0_stride,
                         int64_t B, int64_t C);
// Per head: kk = normalize(k * k_k) (L2, eps 1e-12); then k *= 1 + (a - 1) * k_a (in place).
void kk_prepare(float* k, const float* a, const float* k_k, int64_t kk_stride, const float* k_a, int64_t ka_stride,
                float* kk, int64_t B, int64_t H);
// WKV-7 for every (row, head): state of row i = state + slots[i] * slot_stride + layer_offset, [H][64][64].
void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H);
// Per head: y = (GroupNorm(y; eps) * lw + lb + (sum_j r_j k_j r_k[h, j]) * v) * g, in place.
void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, int64_t rk_stride, const float* lw, int64_t lw_stride, const float* lb,
                           int64_t lb_stride, int64_t B, int64_t H, float eps);
void add_inplace(float* x, const float* t, int64_t n);  // x += t
void relu_sq_inplace(float* x, int64_t n);              // x = max(x, 0)^2
// dst[i, :] = src[rows[i], :]
void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst);
void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst);

// ---- GEMM (the shared products) ---------------------------------------------------------------
// Y[B, out] = X[B, in] W^T, W [out, in] (y = W x) or, x_times_p, Y = X P, P [in, out].
// fp32 weights: core/gemm.h. bf16 weights: X is rounded to bf16 first (the device GEMM takes
// bf16 x bf16 with fp32 accumulation), then the same fp32 product.
void linear_f32(const float* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out);
void linear_bf16(const uint16_t* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out);

// ---- EGGROLL noise ------------------------------------------------------------------------------
// The factors [A (m x r) | B (n x r)] of param `pid` for member `member` come from
// `cache + (member / 2) * (m + n) r` when cache != nullptr, else are generated (noise_element).
// Low-rank correction of a perturbed product, per row i (member members[i]):
//   y = W x:   Y[i] += (s sigma / sqrt r) A (B^T x)       (x_times_p = false; W is [m = out, n = in])
//   y = x P:   Y[i] += (s sigma / sqrt r) (x A) B^T       (x_times_p = true;  P is [m = in, n = out])
void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X,
                 float* Y, const int32_t* members, int64_t B, const float* cache);
// One row of it: t = c * (In^T x) (In [in, r]), then y += Out t (Out [out, r]); t holds r floats.
// The sums over `in` run in 16 interleaved partial sums added in a fixed order, so a row's result
// depends only on the row (batch-invariant) and the loop vectorizes.
void lowrank_correct_row(const float* x, int64_t in, const float* In, const float* Out, int64_t out, int r, float c,
                         float* y, float* t);
// Embedding perturbation (emb [V = m, C = n]): X[i] += (s sigma / sqrt r) B A[tokens[i]]^T.
void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* tokens,
                           float* X, const int32_t* members, int64_t B, const float* cache);
// Full-rank vector noise: out[i, :] = base + s_i sigma eps_i (eps of length n).
void vector_noise_rows(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* members,
                       int64_t B, const float* cache, float* out);
// The per-step cache of one parameter: out[pair][j] = noise element j of pair (len elements each).
void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out);
// Philox raw blocks for a list of (counter, key): out[4i..4i+3] = philox4x32_10(ctr[4i..], key[2i..]).
void philox_blocks(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out);

// ---- update -------------------------------------------------------------------------------------
// The two operands of the update GEMM of matrix pid (m x n) from the antithetic pairs
// [pair_begin, pair_begin + pairs) of a population of N members (fitness [N]; all pairs:
// 0, N / 2): A_all [m][pairs r], columns of pair k scaled by (f_2k - f_2k+1) sigma / sqrt(r N)
// (as eggroll_gradient: coefficient in double, rounded to float once); B_all [n][pairs r].
// g = A_all B_all^T (linear_f32(B_all, false, A_all, g, m, pairs r, n)). A pair range gives
// one rank's partial update (eggroll_gradient's pair range); the cache holds every pair.
void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness, int64_t N,
                    int64_t pair_begin, int64_t pairs, const float* cache, float* A_all, float* B_all);
// Full-rank vector gradient: g[j] = sum_k coef_k eps_k[j] (pairs of the range, in order).
void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                     int64_t pair_begin, int64_t pairs, const float* cache, float* g);

// Optimizer steps on one array (as Optimizer::step, ascent on g scaled by `scale` for clipping).
// Each returns the sum of squares of the applied change (for the update norm).
double sgd_update(float* w, const float* g, int64_t n, double lr, double scale);
// adamw = false: Adam with L2 weight decay folded into g; true: AdamW (decoupled decay).
// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t for the step t being taken.
double adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale);
double sum_squares(const float* x, int64_t n);  // in double, sequential

// ---- sampling / fitness ---------------------------------------------------------------------------
// Greedy argmax of each row (lowest id on ties; NaN ignored; an all-NaN row gives 0).
void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* out);
// rwkv/sampler.h sample_token on each row with (seeds[i], counters[i]).
void sample_rows(const float* logits, int64_t rows, int64_t V, float temperature, int top_k, float top_p,
                 const uint64_t* seeds, const uint64_t* counters, int32_t* out);

}  // namespace ref
}  // namespace eggroll
