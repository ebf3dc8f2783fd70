// The layer op group on the device: embedding, layer/group norms, token shifts, pointwise ops,
// gathers. CPU references of the same names: core/ops/layer.h (namespace eggroll::ref).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"

namespace eggroll::cuda {

using detail::as_stream;
using detail::check;
using detail::check_launch;
using detail::grid_for;

// ---- kernels ------------------------------------------------------------------------------------------

namespace {

__global__ void embed_kernel(const float* __restrict__ emb_f32, const uint16_t* __restrict__ emb_bf16,
                             const int32_t* __restrict__ tokens, int64_t B, int64_t C, float* __restrict__ out) {
  const int64_t total = B * C;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < total; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q / C, j = q - i * C;
    const int64_t src = int64_t(tokens[i]) * C + j;
    out[q] = emb_bf16 ? detail::bf16_bits_to_f32(emb_bf16[src]) : emb_f32[src];
  }
}

// One block per row; two passes (mean, then centred variance) as the CPU reference.
__global__ void layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, int64_t ws,
                                  const float* __restrict__ b, int64_t bs, float* __restrict__ y, int64_t n,
                                  float eps) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * n;
  float* yr = y + row * n;
  const float* wr = w + row * ws;
  const float* br = b + row * bs;
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
  const float mean = detail::block_sum(s, red) / float(n);
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = xr[i] - mean;
    ss += d * d;
  }
  const float inv = rsqrtf(detail::block_sum(ss, red) / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = (xr[i] - mean) * inv * wr[i] + br[i];
}

__global__ void time_shift6_kernel(const float* __restrict__ xa, float* __restrict__ state,
                                   const int32_t* __restrict__ slots, int64_t slot_stride, int64_t layer_offset,
                                   Mix6 mu, float* __restrict__ out, int64_t B, int64_t C) {
  const int64_t total = B * C;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < total; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q / C, j = q - i * C;
    float* prev = state + int64_t(slots[i]) * slot_stride + layer_offset + j;
    const float x = xa[q];
    const float d = *prev - x;
#pragma unroll
    for (int m = 0; m < 6; m++) out[m * total + q] = x + d * mu.p[m][i * mu.stride[m] + j];
    *prev = x;
  }
}

__global__ void channel_shift_kernel(const float* __restrict__ xf, float* __restrict__ state,
                                     const int32_t* __restrict__ slots, int64_t slot_stride, int64_t layer_offset,
                                     const float* __restrict__ mu, int64_t mu_stride, float* __restrict__ out,
                                     int64_t B, int64_t C) {
  const int64_t total = B * C;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < total; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q / C, j = q - i * C;
    float* prev = state + int64_t(slots[i]) * slot_stride + layer_offset + j;
    const float x = xf[q];
    out[q] = x + (*prev - x) * mu[i * mu_stride + j];
    *prev = x;
  }
}

enum class Unary { Tanh, Sigmoid, ReluSq };

template <Unary U>
__global__ void unary_kernel(float* __restrict__ x, int64_t n) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[q];
    if constexpr (U == Unary::Tanh) x[q] = tanhf(v);
    else if constexpr (U == Unary::Sigmoid) x[q] = detail::sigmoid_dev(v);
    else {
      const float t = fmaxf(v, 0.f);
      x[q] = t * t;
    }
  }
}

__global__ void decay_kernel(float* __restrict__ w, const float* __restrict__ w0, int64_t s, int64_t B, int64_t C) {
  const float e = expf(-0.5f);
  const int64_t total = B * C;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < total; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q / C, j = q - i * C;
    w[q] = expf(-e * detail::sigmoid_dev(w0[i * s + j] + w[q]));
  }
}

__global__ void sigmoid_bias_kernel(float* __restrict__ a, const float* __restrict__ a0, int64_t s, int64_t B,
                                    int64_t C) {
  const int64_t total = B * C;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < total; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q / C, j = q - i * C;
    a[q] = detail::sigmoid_dev(a0[i * s + j] + a[q]);
  }
}

__global__ void value_residual_kernel(float* __restrict__ v, const float* __restrict__ vf, const float* __restrict__ t,
                                      const float* __restrict__ v0, int64_t s, int64_t B, int64_t C) {
  const int64_t total = B * C;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < total; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q / C, j = q - i * C;
    const float vv = v[q];
    v[q] = vv + (vf[q] - vv) * detail::sigmoid_dev(v0[i * s + j] + t[q]);
  }
}

// One warp per (row, head): lanes own elements lane and lane + 32 of the head.
__global__ void kk_prepare_kernel(float* __restrict__ k, const float* __restrict__ a, const float* __restrict__ k_k,
                                  int64_t kks, const float* __restrict__ k_a, int64_t kas, float* __restrict__ kk,
                                  int64_t B, int64_t H) {
  const int64_t wid = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (wid >= B * H) return;  // whole warps exit together
  const int64_t i = wid / H, h = wid - i * H, C = H * 64;
  const int64_t o = i * C + h * 64;
  float kv[2], kkv[2];
  double nrm = 0;
#pragma unroll
  for (int u = 0; u < 2; u++) {
    const int j = lane + 32 * u;
    kv[u] = k[o + j];
    kkv[u] = kv[u] * k_k[i * kks + h * 64 + j];
    nrm += double(kkv[u]) * kkv[u];
  }
  nrm = detail::warp_sum(nrm);
  const float inv = 1.f / fmaxf(float(sqrt(nrm)), 1e-12f);
#pragma unroll
  for (int u = 0; u < 2; u++) {
    const int j = lane + 32 * u;
    kk[o + j] = kkv[u] * inv;
    k[o + j] = kv[u] * (1.f + (a[o + j] - 1.f) * k_a[i * kas + h * 64 + j]);
  }
}

// One warp per (row, head).
__global__ void group_norm_bonus_gate_kernel(float* __restrict__ y, const float* __restrict__ r,
                                             const float* __restrict__ k, const float* __restrict__ v,
                                             const float* __restrict__ g, const float* __restrict__ r_k, int64_t rks,
                                             const float* __restrict__ lw, int64_t lws, const float* __restrict__ lb,
                                             int64_t lbs, int64_t B, int64_t H, float eps) {
  const int64_t wid = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (wid >= B * H) return;
  const int64_t i = wid / H, h = wid - i * H, C = H * 64;
  const int64_t o = i * C + h * 64;
  float yv[2], s = 0.f, bonus = 0.f;
#pragma unroll
  for (int u = 0; u < 2; u++) {
    const int j = lane + 32 * u;
    yv[u] = y[o + j];
    s += yv[u];
    bonus += r[o + j] * k[o + j] * r_k[i * rks + h * 64 + j];
  }
  const float mean = detail::warp_sum(s) / 64.f;
  float ss = 0.f;
#pragma unroll
  for (int u = 0; u < 2; u++) ss += (yv[u] - mean) * (yv[u] - mean);
  const float inv = rsqrtf(detail::warp_sum(ss) / 64.f + eps);
  bonus = detail::warp_sum(bonus);
#pragma unroll
  for (int u = 0; u < 2; u++) {
    const int j = lane + 32 * u;
    const int64_t qv = h * 64 + j;
    const float yn = (yv[u] - mean) * inv * lw[i * lws + qv] + lb[i * lbs + qv];
    y[o + j] = (yn + bonus * v[o + j]) * g[o + j];
  }
}

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ t, int64_t n) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x)
    x[q] += t[q];
}

__global__ void gather_rows_kernel(const float* __restrict__ src, const int32_t* __restrict__ rows, int64_t n,
                                   int64_t C, float* __restrict__ dst) {
  const int64_t total = n * C;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < total; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = q / C, j = q - i * C;
    dst[q] = src[int64_t(rows[i]) * C + j];
  }
}

__global__ void gather_i32_kernel(const int32_t* __restrict__ src, const int32_t* __restrict__ idx, int64_t n,
                                  int32_t* __restrict__ dst) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x)
    dst[q] = src[idx[q]];
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, uint16_t* __restrict__ y, int64_t n) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x)
    y[q] = detail::f32_to_bf16_bits(x[q]);
}

__global__ void bf16_to_f32_kernel(const uint16_t* __restrict__ x, float* __restrict__ y, int64_t n) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < n; q += int64_t(gridDim.x) * blockDim.x)
    y[q] = detail::bf16_bits_to_f32(x[q]);
}

constexpr int kThreads = 256;

}  // namespace

// ---- wrappers ---------------------------------------------------------------------------------------

void embed_rows(const void* emb, bool emb_bf16, const int32_t* tokens, int64_t B, int64_t C, float* out,
                void* stream) {
  if (B <= 0) return;
  embed_kernel<<<grid_for(B * C, kThreads), kThreads, 0, as_stream(stream)>>>(
      emb_bf16 ? nullptr : static_cast<const float*>(emb), emb_bf16 ? static_cast<const uint16_t*>(emb) : nullptr,
      tokens, B, C, out);
  check_launch("embed_rows");
}

void layer_norm_rows(const float* x, const float* w, int64_t w_stride, const float* b, int64_t b_stride, float* y,
                     int64_t rows, int64_t n, float eps, void* stream) {
  if (rows <= 0) return;
  if (rows > 0x7fffffffLL) throw std::invalid_argument("layer_norm_rows: too many rows");
  layer_norm_kernel<<<unsigned(rows), kThreads, 0, as_stream(stream)>>>(x, w, w_stride, b, b_stride, y, n, eps);
  check_launch("layer_norm_rows");
}

void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                 const Mix6& mu, float* out, int64_t B, int64_t C, void* stream) {
  if (B <= 0) return;
  time_shift6_kernel<<<grid_for(B * C, kThreads), kThreads, 0, as_stream(stream)>>>(xa, state, slots, slot_stride,
                                                                                    layer_offset, mu, out, B, C);
  check_launch("time_shift6");
}

void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                   const float* mu, int64_t mu_stride, float* out, int64_t B, int64_t C, void* stream) {
  if (B <= 0) return;
  channel_shift_kernel<<<grid_for(B * C, kThreads), kThreads, 0, as_stream(stream)>>>(
      xf, state, slots, slot_stride, layer_offset, mu, mu_stride, out, B, C);
  check_launch("channel_shift");
}

void tanh_inplace(float* x, int64_t n, void* stream) {
  if (n <= 0) return;
  unary_kernel<Unary::Tanh><<<grid_for(n, kThreads), kThreads, 0, as_stream(stream)>>>(x, n);
  check_launch("tanh_inplace");
}
void sigmoid_inplace(float* x, int64_t n, void* stream) {
  if (n <= 0) return;
  unary_kernel<Unary::Sigmoid><<<grid_for(n, kThreads), kThreads, 0, as_stream(stream)>>>(x, n);
  check_launch("sigmoid_inplace");
}
void relu_sq_inplace(float* x, int64_t n, void* stream) {
  if (n <= 0) return;
  unary_kernel<Unary::ReluSq><<<grid_for(n, kThreads), kThreads, 0, as_stream(stream)>>>(x, n);
  check_launch("relu_sq_inplace");
}

void decay_rows(float* w, const float* w0, int64_t w0_stride, int64_t B, int64_t C, void* stream) {
  if (B <= 0) return;
  decay_kernel<<<grid_for(B * C, kThreads), kThreads, 0, as_stream(stream)>>>(w, w0, w0_stride, B, C);
  check_launch("decay_rows");
}
void sigmoid_bias_rows(float* a, const float* a0, int64_t a0_stride, int64_t B, int64_t C, void* stream) {
  if (B <= 0) return;
  sigmoid_bias_kernel<<<grid_for(B * C, kThreads), kThreads, 0, as_stream(stream)>>>(a, a0, a0_stride, B, C);
  check_launch("sigmoid_bias_rows");
}
void value_residual_rows(float* v, const float* v_first, const float* t, const float* v0, int64_t v0_stride,
                         int64_t B, int64_t C, void* stream) {
  if (B <= 0) return;
  value_residual_kernel<<<grid_for(B * C, kThreads), kThreads, 0, as_stream(stream)>>>(v, v_first, t, v0, v0_stride,
                                                                                       B, C);
  check_launch("value_residual_rows");
}

void kk_prepare(float* k, const float* a, const float* k_k, int64_t kk_stride, const float* k_a, int64_t ka_stride,
                float* kk, int64_t B, int64_t H, void* stream) {
  if (B <= 0) return;
  const int64_t threads = B * H * 32;
  kk_prepare_kernel<<<unsigned((threads + kThreads - 1) / kThreads), kThreads, 0, as_stream(stream)>>>(
      k, a, k_k, kk_stride, k_a, ka_stride, kk, B, H);
  check_launch("kk_prepare");
}

void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, int64_t rk_stride, const float* lw, int64_t lw_stride, const float* lb,
                           int64_t lb_stride, int64_t B, int64_t H, float eps, void* stream) {
  if (B <= 0) return;
  const int64_t threads = B * H * 32;
  group_norm_bonus_gate_kernel<<<unsigned((threads + kThreads - 1) / kThreads), kThreads, 0, as_stream(stream)>>>(
      y, r, k, v, g, r_k, rk_stride, lw, lw_stride, lb, lb_stride, B, H, eps);
  check_launch("group_norm_bonus_gate");
}

void add_inplace(float* x, const float* t, int64_t n, void* stream) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n, kThreads), kThreads, 0, as_stream(stream)>>>(x, t, n);
  check_launch("add_inplace");
}

void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst, void* stream) {
  if (n <= 0) return;
  gather_rows_kernel<<<grid_for(n * C, kThreads), kThreads, 0, as_stream(stream)>>>(src, rows, n, C, dst);
  check_launch("gather_rows");
}

void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst, void* stream) {
  if (n <= 0) return;
  gather_i32_kernel<<<grid_for(n, kThreads), kThreads, 0, as_stream(stream)>>>(src, idx, n, dst);
  check_launch("gather_i32");
}

void f32_to_bf16(const float* x, uint16_t* y, int64_t n, void* stream) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, as_stream(stream)>>>(x, y, n);
  check_launch("f32_to_bf16");
}
void bf16_to_f32(const uint16_t* x, float* y, int64_t n, void* stream) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, as_stream(stream)>>>(x, y, n);
  check_launch("bf16_to_f32");
}

}  // namespace eggroll::cuda
