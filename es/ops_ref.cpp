#include "es/ops_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>
#include <stdexcept>
#include <vector>

#include "core/dtype.h"
#include "core/gemm.h"
#include "rwkv/forward.h"
#include "rwkv/sampler.h"

namespace eggroll {

float round_to_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

namespace ref {

namespace {
inline float sigmoidf(float x) { return 1.f / (1.f + std::exp(-x)); }
}  // namespace

// ---- model ops ------------------------------------------------------------------------------

void embed_rows(const float* emb_f32, const uint16_t* emb_bf16, const int32_t* tokens, int64_t B, int64_t C,
                float* out) {
  for (int64_t i = 0; i < B; i++) {
    const int64_t t = tokens[i];
    if (emb_bf16) {
      for (int64_t j = 0; j < C; j++) out[i * C + j] = bf16_to_f32(emb_bf16[t * C + j]);
    } else {
      std::copy_n(emb_f32 + t * C, C, out + i * C);
    }
  }
}

void layer_norm_rows(const float* x, const float* w, int64_t w_stride, const float* b, int64_t b_stride, float* y,
                     int64_t B, int64_t n, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; i++) layer_norm_row(x + i * n, w + i * w_stride, b + i * b_stride, y + i * n, n, eps);
}

void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                 const float* const mu[6], const int64_t mu_stride[6], float* out, int64_t B, int64_t C) {
  const int64_t BC = B * C;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; i++) {
    float* prev = state + int64_t(slots[i]) * slot_stride + layer_offset;
    const float* x = xa + i * C;
    for (int64_t j = 0; j < C; j++) {
      const float d = prev[j] - x[j];
      for (int q = 0; q < 6; q++) out[q * BC + i * C + j] = x[j] + d * mu[q][i * mu_stride[q] + j];
      prev[j] = x[j];
    }
  }
}

void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                   const float* mu, int64_t mu_stride, float* out, int64_t B, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; i++) {
    float* prev = state + int64_t(slots[i]) * slot_stride + layer_offset;
    const float* x = xf + i * C;
    float* o = out + i * C;
    for (int64_t j = 0; j < C; j++) {
      o[j] = x[j] + (prev[j] - x[j]) * mu[i * mu_stride + j];
      prev[j] = x[j];
    }
  }
}

void tanh_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = std::tanh(x[i]);
}

void sigmoid_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = sigmoidf(x[i]);
}

void decay_rows(float* w, const float* w0, int64_t w0_stride, int64_t B, int64_t C) {
  const float e = std::exp(-0.5f);
  for (int64_t i = 0; i < B; i++)
    for (int64_t j = 0; j < C; j++) {
      float& d = w[i * C + j];
      d = std::exp(-e * sigmoidf(w0[i * w0_stride + j] + d));
    }
}

void sigmoid_bias_rows(float* a, const float* a0, int64_t a0_stride, int64_t B, int64_t C) {
  for (int64_t i = 0; i < B; i++)
    for (int64_t j = 0; j < C; j++) a[i * C + j] = sigmoidf(a0[i * a0_stride + j] + a[i * C + j]);
}

void value_residual_rows(float* v, const float* v_first, const float* t, const float* v0, int64_t v0_stride,
                         int64_t B, int64_t C) {
  for (int64_t i = 0; i < B; i++)
    for (int64_t j = 0; j < C; j++) {
      const int64_t q = i * C + j;
      v[q] += (v_first[q] - v[q]) * sigmoidf(v0[i * v0_stride + j] + t[q]);
    }
}

void kk_prepare(float* k, const float* a, const float* k_k, int64_t kk_stride, const float* k_a, int64_t ka_stride,
                float* kk, int64_t B, int64_t H) {
  const int64_t C = H * 64;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < B; i++)
    for (int64_t h = 0; h < H; h++) {
      const int64_t o = i * C + h * 64;
      float* kr = k + o;
      const float* ar = a + o;
      float* kkr = kk + o;
      double nrm = 0;
      for (int j = 0; j < 64; j++) {
        kkr[j] = kr[j] * k_k[i * kk_stride + h * 64 + j];
        nrm += double(kkr[j]) * kkr[j];
      }
      const float inv = 1.f / std::max(float(std::sqrt(nrm)), 1e-12f);
      for (int j = 0; j < 64; j++) kkr[j] *= inv;
      for (int j = 0; j < 64; j++) kr[j] *= 1.f + (ar[j] - 1.f) * k_a[i * ka_stride + h * 64 + j];
    }
}

void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H) {
  const int64_t C = H * 64;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < B; i++)
    for (int64_t h = 0; h < H; h++) {
      const int64_t o = i * C + h * 64;
      float* S = state + int64_t(slots[i]) * slot_stride + layer_offset + h * 4096;
      wkv7_head(S, r + o, decay + o, k + o, v + o, kk + o, a + o, y + o);
    }
}

void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, int64_t rk_stride, const float* lw, int64_t lw_stride, const float* lb,
                           int64_t lb_stride, int64_t B, int64_t H, float eps) {
  const int64_t C = H * 64;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < B; i++)
    for (int64_t h = 0; h < H; h++) {
      const int64_t o = i * C + h * 64;
      float* yr = y + o;
      double mean = 0, var = 0;
      for (int j = 0; j < 64; j++) mean += yr[j];
      mean /= 64;
      for (int j = 0; j < 64; j++) var += (yr[j] - mean) * (yr[j] - mean);
      var /= 64;
      const float mu = float(mean), is = float(1.0 / std::sqrt(var + double(eps)));
      float bonus = 0.f;
      for (int j = 0; j < 64; j++) bonus += r[o + j] * k[o + j] * r_k[i * rk_stride + h * 64 + j];
      for (int j = 0; j < 64; j++) {
        const int64_t q = h * 64 + j;
        const float yn = (yr[j] - mu) * is * lw[i * lw_stride + q] + lb[i * lb_stride + q];
        yr[j] = (yn + bonus * v[o + j]) * g[o + j];
      }
    }
}

void add_inplace(float* x, const float* t, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] += t[i];
}

void relu_sq_inplace(float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float t = std::max(x[i], 0.f);
    x[i] = t * t;
  }
}

void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) {
  for (int64_t i = 0; i < n; i++) std::copy_n(src + int64_t(rows[i]) * C, C, dst + i * C);
}

void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) {
  for (int64_t i = 0; i < n; i++) dst[i] = src[idx[i]];
}

// ---- GEMM -------------------------------------------------------------------------------------

void linear_f32(const float* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out) {
  if (x_times_p) gemm_xp(X, W, Y, B, in, out);
  else gemm_xwt(X, W, Y, B, in, out);
}

void linear_bf16(const uint16_t* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out) {
  std::vector<float> w(static_cast<size_t>(in * out)), x(static_cast<size_t>(B * in));
  for (size_t j = 0; j < w.size(); j++) w[j] = bf16_to_f32(W[j]);
  for (size_t j = 0; j < x.size(); j++) x[j] = round_to_bf16(X[j]);
  linear_f32(w.data(), x_times_p, x.data(), Y, B, in, out);
}

// ---- EGGROLL noise ------------------------------------------------------------------------------

namespace {
// Generated factors of one pair (the two members of an antithetic pair share them).
struct FactorBuffer {
  std::vector<float> data;
  int64_t pair = -1;
};
// The factor array of (pid, member): cached, or generated into buf (kept while the pair repeats).
const float* factor_array(const NoiseSpec& ns, uint32_t pid, uint32_t member, int64_t len, const float* cache,
                          FactorBuffer& buf) {
  if (cache) return cache + int64_t(member / 2) * len;
  if (buf.pair != int64_t(member / 2) || int64_t(buf.data.size()) != len) {
    buf.data.resize(static_cast<size_t>(len));
    fill_noise(noise_spec_key(ns, pid, member), ns.dist, 0, size_t(len), buf.data.data());
    buf.pair = member / 2;
  }
  return buf.data.data();
}
}  // namespace

void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X,
                 float* Y, const int32_t* members, int64_t B, const float* cache) {
  const int r = ns.rank;
  const int64_t len = (m + n) * r;
  const int64_t in = x_times_p ? m : n, out = x_times_p ? n : m;
#pragma omp parallel
  {
    FactorBuffer buf;
    std::vector<float> t(static_cast<size_t>(r));
#pragma omp for schedule(dynamic, 2)  // an antithetic pair's rows usually sit next to each other
    for (int64_t i = 0; i < B; i++) {
      const uint32_t mem = uint32_t(members[i]);
      const float* F = factor_array(ns, pid, mem, len, cache, buf);
      const float* A = F;          // [m, r]
      const float* Bf = F + m * r;  // [n, r]
      const float* In = x_times_p ? A : Bf;
      const float* Out = x_times_p ? Bf : A;
      const float c = noise_spec_lowrank_scale(ns, mem);
      lowrank_correct_row(X + i * in, in, In, Out, out, r, c, Y + i * out, t.data());
    }
  }
}

void lowrank_correct_row(const float* x, int64_t in, const float* In, const float* Out, int64_t out, int r, float c,
                         float* y, float* t) {
  constexpr int L = 16;
  for (int q = 0; q < r; q++) {
    float part[L] = {};
    int64_t k = 0;
    if (r == 1) {
      for (; k + L <= in; k += L)
        for (int l = 0; l < L; l++) part[l] += x[k + l] * In[k + l];
    } else {
      for (; k + L <= in; k += L)
        for (int l = 0; l < L; l++) part[l] += x[k + l] * In[(k + l) * r + q];
    }
    for (int l = 0; k < in; k++, l++) part[l] += x[k] * In[k * r + q];
    float sum = 0.f;
    for (int l = 0; l < L; l++) sum += part[l];
    t[q] = c * sum;
  }
  if (r == 1) {
    const float t0 = t[0];
    for (int64_t o = 0; o < out; o++) y[o] += Out[o] * t0;
  } else {
    for (int64_t o = 0; o < out; o++) {
      float acc = 0.f;
      for (int q = 0; q < r; q++) acc += Out[o * r + q] * t[q];
      y[o] += acc;
    }
  }
}

void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* tokens,
                           float* X, const int32_t* members, int64_t B, const float* cache) {
  const int r = ns.rank;
  const int64_t len = (m + n) * r;
  FactorBuffer buf;
  for (int64_t i = 0; i < B; i++) {
    const uint32_t mem = uint32_t(members[i]);
    const float* F = factor_array(ns, pid, mem, len, cache, buf);
    const float* a = F + int64_t(tokens[i]) * r;
    const float* Bf = F + m * r;
    const float c = noise_spec_lowrank_scale(ns, mem);
    float* x = X + i * n;
    for (int64_t o = 0; o < n; o++) {
      float acc = 0.f;
      for (int q = 0; q < r; q++) acc += Bf[o * r + q] * a[q];
      x[o] += c * acc;
    }
  }
}

void vector_noise_rows(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* members,
                       int64_t B, const float* cache, float* out) {
  FactorBuffer buf;
  for (int64_t i = 0; i < B; i++) {
    const uint32_t mem = uint32_t(members[i]);
    const float* eps = factor_array(ns, pid, mem, n, cache, buf);
    const float c = noise_spec_vector_scale(ns, mem);
    float* o = out + i * n;
    std::copy_n(base, n, o);
    for (int64_t j = 0; j < n; j++) o[j] += c * eps[j];
  }
}

void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) {
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t p = 0; p < pairs; p++)
    fill_noise(noise_spec_key(ns, pid, uint32_t(2 * p)), ns.dist, 0, size_t(len), out + p * len);
}

void philox_blocks(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out) {
  for (int64_t i = 0; i < n; i++) {
    const Philox4x32 b = philox4x32_10(counters[4 * i], counters[4 * i + 1], counters[4 * i + 2],
                                       counters[4 * i + 3], keys[2 * i], keys[2 * i + 1]);
    for (int w = 0; w < 4; w++) out[4 * i + w] = b.v[w];
  }
}

// ---- update -------------------------------------------------------------------------------------

namespace {
// Coefficients of pairs [p0, p0 + np) (index k - p0).
std::vector<double> pair_coefficients(const NoiseSpec& ns, const float* fitness, int64_t N, int64_t p0, int64_t np) {
  if (N < 2 || N % 2) throw std::invalid_argument("update: the population must be even and >= 2");
  if (p0 < 0 || np < 0 || p0 + np > N / 2) throw std::invalid_argument("update: pair range outside the population");
  std::vector<double> coef(static_cast<size_t>(np));
  for (int64_t k = p0; k < p0 + np; k++)
    coef[size_t(k - p0)] = double(fitness[2 * k] - fitness[2 * k + 1]) * ns.sigma / std::sqrt(double(N));
  return coef;
}
}  // namespace

void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness, int64_t N,
                    int64_t pair_begin, int64_t pairs, const float* cache, float* A_all, float* B_all) {
  const auto coef = pair_coefficients(ns, fitness, N, pair_begin, pairs);
  const int64_t r = ns.rank, K = pairs * r, len = (m + n) * r;
#pragma omp parallel
  {
    FactorBuffer buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < pairs; k++) {
      const float* f = factor_array(ns, pid, uint32_t(2 * (pair_begin + k)), len, cache, buf);
      const float s = float(coef[size_t(k)] / std::sqrt(double(r)));
      for (int64_t o = 0; o < m; o++)
        for (int64_t q = 0; q < r; q++) A_all[o * K + k * r + q] = s * f[o * r + q];
      for (int64_t j = 0; j < n; j++)
        for (int64_t q = 0; q < r; q++) B_all[j * K + k * r + q] = f[m * r + j * r + q];
    }
  }
}

void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                     int64_t pair_begin, int64_t pairs, const float* cache, float* g) {
  const auto coef = pair_coefficients(ns, fitness, N, pair_begin, pairs);
  FactorBuffer buf;
  std::fill_n(g, n, 0.f);
  for (int64_t k = 0; k < pairs; k++) {
    const float* eps = factor_array(ns, pid, uint32_t(2 * (pair_begin + k)), n, cache, buf);
    const float s = float(coef[size_t(k)]);
    for (int64_t j = 0; j < n; j++) g[j] += s * eps[j];
  }
}

namespace {
// Runs body(j) for j < n in fixed chunks (in parallel) and returns the sum of what each chunk's
// body calls returned, chunk sums added in chunk order: the result does not depend on the
// number of threads.
template <class F>
double chunked_sum(int64_t n, F&& body) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(std::max<int64_t>(chunks, 0)), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; c++) {
    double s = 0;
    for (int64_t j = c * kChunk; j < std::min(n, (c + 1) * kChunk); j++) s += body(j);
    part[size_t(c)] = s;
  }
  double s = 0;
  for (double v : part) s += v;
  return s;
}

// w = float(w + delta); returns the square of the change actually applied.
inline double apply_change(float& w, double delta) {
  const float before = w;
  w = float(before + delta);
  const double d = double(w) - before;
  return d * d;
}
}  // namespace

double sgd_update(float* w, const float* g, int64_t n, double lr, double scale) {
  return chunked_sum(n, [&](int64_t j) { return apply_change(w[j], lr * (double(g[j]) * scale)); });
}

double adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale) {
  return chunked_sum(n, [&](int64_t j) {
    double gj = double(g[j]) * scale;
    if (!adamw && weight_decay > 0) gj -= weight_decay * w[j];
    m1[j] = float(beta1 * m1[j] + (1 - beta1) * gj);
    m2[j] = float(beta2 * m2[j] + (1 - beta2) * gj * gj);
    double delta = lr * (m1[j] / bc1) / (std::sqrt(m2[j] / bc2) + eps);
    if (adamw) delta -= lr * weight_decay * w[j];
    return apply_change(w[j], delta);
  });
}

double sum_squares(const float* x, int64_t n) {
  return chunked_sum(n, [&](int64_t j) { return double(x[j]) * x[j]; });
}

// ---- sampling -------------------------------------------------------------------------------------

void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* out) {
  SamplingParams greedy;
  for (int64_t i = 0; i < rows; i++)
    out[i] = sample_token(std::span<const float>(logits + i * V, size_t(V)), greedy, 0, 0);
}

void sample_rows(const float* logits, int64_t rows, int64_t V, float temperature, int top_k, float top_p,
                 const uint64_t* seeds, const uint64_t* counters, int32_t* out) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  for (int64_t i = 0; i < rows; i++)
    out[i] = sample_token(std::span<const float>(logits + i * V, size_t(V)), p, seeds[i], counters[i]);
}

}  // namespace ref
}  // namespace eggroll
