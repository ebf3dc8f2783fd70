#pragma once
// Layer ops of the RWKV-7 step: embedding, norms, token shifts, pointwise ops, gathers.
// CPU reference ops (namespace eggroll::ref): the definition of what every backend computes.
// The CUDA kernels of the same group live in cuda/layer.cu under the same names; the op table
// (tests/test_backend_ops.cpp) runs both against these. docs/architecture.md lists the groups.
//
// Conventions: row-major arrays; B rows ("batch", one per generation); C = n_embd; H heads of
// 64. A per-row vector parameter is (pointer, stride): row i reads p + i * stride (stride 0 =
// shared by all rows, stride n = one perturbed copy per row). State arrays hold one slot per
// member: member `slot` of layer l starts at base + slot * slot_stride + layer_offset.
#include <cstddef>
#include <cstdint>


namespace eggroll {
namespace ref {

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
// Per head: y = (GroupNorm(y; eps) * lw + lb + (sum_j r_j k_j r_k[h, j]) * v) * g, in place.
void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, int64_t rk_stride, const float* lw, int64_t lw_stride, const float* lb,
                           int64_t lb_stride, int64_t B, int64_t H, float eps);
void add_inplace(float* x, const float* t, int64_t n);  // x += t
void relu_sq_inplace(float* x, int64_t n);              // x = max(x, 0)^2
// dst[i, :] = src[rows[i], :]
void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst);
void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst);

// One row: y = LayerNorm(x) * w + b (statistics in double, each sum in 8 running sums: element i
// into sum i % 8, added pairwise at the end, so the order is fixed and vectorisable). The per-head
// sums of kk_prepare (the norm) and group_norm_bonus_gate (mean, variance, bonus) are formed the
// same way, in double.
void layer_norm_row(const float* x, const float* w, const float* b, float* y, int64_t n, float eps = 1e-5f);

}  // namespace ref
}  // namespace eggroll
