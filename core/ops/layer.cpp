#include "core/ops/layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "core/dtype.h"
#include "core/ops/exp_f32.h"
#include "core/parallel.h"

namespace eggroll {
namespace ref {

namespace {
inline float sigmoidf(float x) { return 1.f / (1.f + exp_f32(-x)); }
// Chunk sizes for the pool (core/parallel.h): about 8K elements per chunk, so that a chunk is
// worth claiming; smaller inputs run on the calling thread alone.
constexpr int64_t kElementGrain = 8192, kHeadGrain = kElementGrain / 64;
inline int64_t row_grain(int64_t row_elements) { return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(row_elements, 1)); }
// sum over i of f(i) in double: 8 running sums (element i into sum i % 8), added pairwise at the
// end; a fixed order (the same bits on every machine and batch) that the compiler can vectorise.
template <class F>
double sum8(int64_t n, F&& f) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t n8 = n / 8 * 8;
  for (int64_t i = 0; i < n8; i += 8)
    for (int q = 0; q < 8; q++) s[q] += f(i + q);
  for (int q = 0; q < n - n8; q++) s[q] += f(n8 + q);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
}  // namespace

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
  parallel_for(B, row_grain(n), [&](int64_t i) {
    layer_norm_row(x + i * n, w + i * w_stride, b + i * b_stride, y + i * n, n, eps);
  });
}

void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                 const float* const mu[6], const int64_t mu_stride[6], float* out, int64_t B, int64_t C) {
  const int64_t BC = B * C;
  parallel_for(B, row_grain(6 * C), [&](int64_t i) {
    float* prev = state + int64_t(slots[i]) * slot_stride + layer_offset;
    const float* x = xa + i * C;
    thread_local std::vector<float> dv;  // prev - x of this row
    dv.resize(size_t(C));
    float* d = dv.data();
    for (int64_t j = 0; j < C; j++) d[j] = prev[j] - x[j];
    for (int q = 0; q < 6; q++) {  // one contiguous (vectorisable) pass per output
      float* o = out + q * BC + i * C;
      const float* m = mu[q] + i * mu_stride[q];
      for (int64_t j = 0; j < C; j++) o[j] = x[j] + d[j] * m[j];
    }
    std::copy_n(x, C, prev);
  });
}

void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                   const float* mu, int64_t mu_stride, float* out, int64_t B, int64_t C) {
  parallel_for(B, row_grain(C), [&](int64_t i) {
    float* prev = state + int64_t(slots[i]) * slot_stride + layer_offset;
    const float* x = xf + i * C;
    float* o = out + i * C;
    for (int64_t j = 0; j < C; j++) {
      o[j] = x[j] + (prev[j] - x[j]) * mu[i * mu_stride + j];
      prev[j] = x[j];
    }
  });
}

void tanh_inplace(float* x, int64_t n) {
  parallel_for_chunks(n, kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) x[i] = std::tanh(x[i]);
  });
}

void sigmoid_inplace(float* x, int64_t n) {
  parallel_for_chunks(n, kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) x[i] = sigmoidf(x[i]);
  });
}

void decay_rows(float* w, const float* w0, int64_t w0_stride, int64_t B, int64_t C) {
  const float e = std::exp(-0.5f);
  parallel_for(B, row_grain(C), [&](int64_t i) {
    for (int64_t j = 0; j < C; j++) {
      float& d = w[i * C + j];
      d = exp_f32(-e * sigmoidf(w0[i * w0_stride + j] + d));
    }
  });
}

void sigmoid_bias_rows(float* a, const float* a0, int64_t a0_stride, int64_t B, int64_t C) {
  parallel_for(B, row_grain(C), [&](int64_t i) {
    for (int64_t j = 0; j < C; j++) a[i * C + j] = sigmoidf(a0[i * a0_stride + j] + a[i * C + j]);
  });
}

void value_residual_rows(float* v, const float* v_first, const float* t, const float* v0, int64_t v0_stride,
                         int64_t B, int64_t C) {
  parallel_for(B, row_grain(C), [&](int64_t i) {
    for (int64_t j = 0; j < C; j++) {
      const int64_t q = i * C + j;
      v[q] += (v_first[q] - v[q]) * sigmoidf(v0[i * v0_stride + j] + t[q]);
    }
  });
}

void kk_prepare(float* k, const float* a, const float* k_k, int64_t kk_stride, const float* k_a, int64_t ka_stride,
                float* kk, int64_t B, int64_t H) {
  const int64_t C = H * 64;
  parallel_for(B * H, kHeadGrain, [&](int64_t ih) {
    {
      const int64_t i = ih / H, h = ih % H;
      const int64_t o = i * C + h * 64;
      float* kr = k + o;
      const float* ar = a + o;
      float* kkr = kk + o;
      for (int j = 0; j < 64; j++) kkr[j] = kr[j] * k_k[i * kk_stride + h * 64 + j];
      const double nrm = sum8(64, [kkr](int64_t j) { return double(kkr[j]) * kkr[j]; });
      const float inv = 1.f / std::max(float(std::sqrt(nrm)), 1e-12f);
      for (int j = 0; j < 64; j++) kkr[j] *= inv;
      for (int j = 0; j < 64; j++) kr[j] *= 1.f + (ar[j] - 1.f) * k_a[i * ka_stride + h * 64 + j];
    }
  });
}

void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, int64_t rk_stride, const float* lw, int64_t lw_stride, const float* lb,
                           int64_t lb_stride, int64_t B, int64_t H, float eps) {
  const int64_t C = H * 64;
  parallel_for(B * H, kHeadGrain, [&](int64_t ih) {
    {
      const int64_t i = ih / H, h = ih % H;
      const int64_t o = i * C + h * 64;
      float* yr = y + o;
      const double mean = sum8(64, [yr](int64_t j) { return double(yr[j]); }) / 64;
      const double var = sum8(64, [yr, mean](int64_t j) {
                           const double d = yr[j] - mean;
                           return d * d;
                         }) /
                         64;
      const float mu = float(mean), is = float(1.0 / std::sqrt(var + double(eps)));
      const float* rkr = r_k + i * rk_stride + h * 64;
      const float bonus = float(sum8(64, [&](int64_t j) { return double(r[o + j] * k[o + j] * rkr[j]); }));
      for (int j = 0; j < 64; j++) {
        const int64_t q = h * 64 + j;
        const float yn = (yr[j] - mu) * is * lw[i * lw_stride + q] + lb[i * lb_stride + q];
        yr[j] = (yn + bonus * v[o + j]) * g[o + j];
      }
    }
  });
}

void add_inplace(float* x, const float* t, int64_t n) {
  parallel_for_chunks(n, kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) x[i] += t[i];
  });
}

void relu_sq_inplace(float* x, int64_t n) {
  parallel_for_chunks(n, kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      const float t = std::max(x[i], 0.f);
      x[i] = t * t;
    }
  });
}

void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) {
  for (int64_t i = 0; i < n; i++) std::copy_n(src + int64_t(rows[i]) * C, C, dst + i * C);
}

void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) {
  for (int64_t i = 0; i < n; i++) dst[i] = src[idx[i]];
}

void layer_norm_row(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  const double mean = sum8(n, [x](int64_t i) { return double(x[i]); }) / double(n);
  const double var = sum8(n, [x, mean](int64_t i) {
                       const double d = x[i] - mean;
                       return d * d;
                     }) /
                     double(n);
  const float mu = float(mean), inv = float(1.0 / std::sqrt(var + eps));
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mu) * inv * w[i] + b[i];
}

}  // namespace ref
}  // namespace eggroll
