// WKV-7 single-token state update (CPU reference: ref::wkv7_head and ref::wkv7_rows, core/ops/wkv7.h).
//
// Per (row, head), S fp32, stored [j][i] (S(i, j) at j * 64 + i; i = value index, j = key index):
//   sa_i = -sum_j S(i, j) kk[j]
//   S(i, j) = S(i, j) decay[j] + sa_i (kk[j] a[j]) + v[i] k[j]
//   y_i = sum_j S(i, j) r[j]
// One block of 64 threads per (row, head); thread i owns value index i and holds its 64 state
// values in registers, so for each j the block reads and writes 64 consecutive floats (one
// coalesced 256-byte access; the state is the dominant memory traffic: 16 KiB per head read and
// written each token) and both sums run in one thread, in j order, with the reference's roundings
// (products and sums rounded apart with __fmul_rn / __fadd_rn so nvcc does not contract them, the
// two fused steps explicit fmaf): the same operations as the CPU reference, in the same order.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "core/ops/wkv7.h"
#include "cuda/cuda_ops.h"

namespace eggroll::cuda {

namespace {

constexpr int kThreads = 64;

__global__ void __launch_bounds__(kThreads)
    wkv7_kernel(float* __restrict__ state, const int32_t* __restrict__ slots, int64_t slot_stride,
                int64_t layer_offset, const float* __restrict__ r, const float* __restrict__ decay,
                const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ kk,
                const float* __restrict__ a, float* __restrict__ y, int64_t H) {
  const int64_t rh = blockIdx.x;  // (row, head)
  const int64_t row = rh / H, h = rh - row * H;
  const int64_t o = rh * 64;      // == row * C + h * 64
  __shared__ float sr[64], sd[64], sk[64], skk[64], sb[64];
  const int i = threadIdx.x;
  sr[i] = r[o + i];
  sd[i] = decay[o + i];
  sk[i] = k[o + i];
  skk[i] = kk[o + i];
  sb[i] = __fmul_rn(kk[o + i], a[o + i]);
  const float vi = v[o + i];
  __syncthreads();
  const int64_t slot = slots ? int64_t(slots[row]) : row;
  float* S = state + slot * slot_stride + layer_offset + h * kWkvHeadState + i;
  float s[64];
  float sa = 0.f;
#pragma unroll
  for (int j = 0; j < 64; j++) {
    s[j] = S[j * 64];
    sa = __fsub_rn(sa, __fmul_rn(s[j], skk[j]));
  }
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < 64; j++) {
    const float x = fmaf(vi, sk[j], fmaf(s[j], sd[j], __fmul_rn(sa, sb[j])));
    S[j * 64] = x;
    acc = __fadd_rn(acc, __fmul_rn(x, sr[j]));
  }
  y[o + i] = acc;
}

}  // namespace

void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H, void* stream) {
  if (B <= 0) return;
  const int64_t blocks = B * H;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("wkv7_rows: too many (row, head) pairs");
  wkv7_kernel<<<unsigned(blocks), kThreads, 0, detail::as_stream(stream)>>>(state, slots, slot_stride,
                                                                          layer_offset, r, decay, k, v, kk, a, y, H);
  detail::check_launch("wkv7_rows");
}

}  // namespace eggroll::cuda
