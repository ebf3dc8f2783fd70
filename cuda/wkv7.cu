// WKV-7 single-token state update (CPU reference: ref::wkv7_head and ref::wkv7_rows, core/ops/wkv7.h).
//
// Per (row, head), S [64][64] fp32 (row i = value index, column j = key index):
//   sa_i = -sum_j S[i][j] kk[j]
//   S[i][j] = S[i][j] decay[j] + sa_i (kk[j] a[j]) + v[i] k[j]
//   y_i = sum_j S[i][j] r[j]
// One block of 4 warps per (row, head). Warp w owns state rows 16w .. 16w+15; lane l holds the
// columns 2l, 2l+1 of a row, so each row is read and written as one coalesced 256-byte access
// (the state is the dominant memory traffic: 16 KiB per head read and written each token); both
// row reductions are warp shuffles.
#include <cuda_runtime.h>

#include "cuda/common.cuh"
#include "core/ops/wkv7.h"
#include "cuda/cuda_ops.h"

namespace eggroll::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 64 / kWarps;

__global__ void __launch_bounds__(kWarps * 32)
    wkv7_kernel(float* __restrict__ state, const int32_t* __restrict__ slots, int64_t slot_stride,
                int64_t layer_offset, const float* __restrict__ r, const float* __restrict__ decay,
                const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ kk,
                const float* __restrict__ a, float* __restrict__ y, int64_t H) {
  const int64_t rh = blockIdx.x;  // (row, head)
  const int64_t i = rh / H, h = rh - i * H;
  const int64_t o = rh * 64;      // == i * C + h * 64
  __shared__ float2 sr[32], sd[32], sk[32], skk[32], sb[32];
  __shared__ float sv[64];
  const int t = threadIdx.x;
  if (t < 64) {
    reinterpret_cast<float*>(sr)[t] = r[o + t];
    reinterpret_cast<float*>(sd)[t] = decay[o + t];
    reinterpret_cast<float*>(sk)[t] = k[o + t];
    reinterpret_cast<float*>(skk)[t] = kk[o + t];
    reinterpret_cast<float*>(sb)[t] = kk[o + t] * a[o + t];
    sv[t] = v[o + t];
  }
  __syncthreads();
  const int64_t slot = slots ? int64_t(slots[i]) : i;
  float* S = state + slot * slot_stride + layer_offset + h * kWkvHeadState;
  const int lane = t & 31, warp = t >> 5;
  const float2 cr = sr[lane], cd = sd[lane], ck = sk[lane], ckk = skk[lane], cb = sb[lane];
#pragma unroll 4
  for (int q = 0; q < kRowsPerWarp; q++) {
    const int row = warp * kRowsPerWarp + q;
    float2* Srow = reinterpret_cast<float2*>(S + row * 64);
    float2 s = Srow[lane];
    const float sa = -detail::warp_sum(s.x * ckk.x + s.y * ckk.y);
    const float vi = sv[row];
    s.x = s.x * cd.x + sa * cb.x + vi * ck.x;
    s.y = s.y * cd.y + sa * cb.y + vi * ck.y;
    Srow[lane] = s;
    const float acc = detail::warp_sum(s.x * cr.x + s.y * cr.y);
    if (lane == 0) y[o + row] = acc;
  }
}

}  // namespace

void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H, void* stream) {
  if (B <= 0) return;
  const int64_t blocks = B * H;
  if (blocks > 0x7fffffffLL) throw std::invalid_argument("wkv7_rows: too many (row, head) pairs");
  wkv7_kernel<<<unsigned(blocks), kWarps * 32, 0, detail::as_stream(stream)>>>(state, slots, slot_stride,
                                                                               layer_offset, r, decay, k, v, kk, a, y, H);
  detail::check_launch("wkv7_rows");
}

}  // namespace eggroll::cuda
