// Token sampling on the device (CPU reference: sample_token, core/ops/sample.cpp; ref::argmax_rows,
// ref::sample_rows). One block per row.
//
// Greedy: block argmax, lowest id on ties, NaN ignored, 0 when no value beats -inf (the CPU's
// strict '>' scan from -inf).
//
// Temperature / top-k / top-p without sorting the vocabulary: every logit gets the 64-bit key
//   (order-preserving bits of the logit) << 32 | (2^32 - 1 - id)
// (NaN lowest, -0 == +0), so "descending key" is exactly the CPU's candidate order (logit
// descending, ties by lower id). A weighted radix select (8 passes of 8 bits, shared-memory
// histograms of weights) finds the element where a cumulative weight in that order first
// reaches a target:
//   top-k:  weight 1, target k             -> smallest kept key
//   top-p:  weight p_i / total, target top_p (p_i = exp((l_i - max) / T) over the top-k set)
//   draw:   weight p_i, first cumulative > u = uniform01(seed, counter) * kept total
// The draw uses the CPU's uniform01 (a splitmix hash of (seed, counter), core/sample_rng.h), so a
// row draws the same token as the CPU unless a cumulative sum lies within double rounding of a
// cut-off (the histogram sums are added in a different order).
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"
#include "core/sample_rng.h"

namespace eggroll::cuda {

namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ uint64_t sort_key(float l, int64_t i) {
  uint32_t ord = 0;
  if (!isnan(l)) {
    const uint32_t u = l == 0.f ? 0u : __float_as_uint(l);
    ord = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  }
  return (uint64_t(ord) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(i));
}
__device__ __forceinline__ int32_t key_id(uint64_t k) { return int32_t(0xFFFFFFFFu - uint32_t(k & 0xFFFFFFFFu)); }

struct ArgBest {
  float v;
  int32_t i;
};
__device__ __forceinline__ ArgBest better_of(ArgBest a, ArgBest b) {
  if (b.i < 0) return a;
  if (a.i < 0) return b;
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}

// Argmax of row over the block (all threads get it): first index of the largest non-NaN value,
// or 0 when that value is -inf or every value is NaN.
__device__ int32_t block_argmax(const float* row, int64_t V) {
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  ArgBest b{-INFINITY, -1};
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float l = row[i];
    if (!isnan(l)) b = better_of(b, ArgBest{l, int32_t(i)});
  }
  for (int o = 16; o > 0; o >>= 1) {
    ArgBest t{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    b = better_of(b, t);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sv[warp] = b.v, si[warp] = b.i;
  __syncthreads();
  if (warp == 0) {
    ArgBest t = lane < warps ? ArgBest{sv[lane], si[lane]} : ArgBest{-INFINITY, -1};
    for (int o = 16; o > 0; o >>= 1) {
      ArgBest u{__shfl_xor_sync(0xffffffffu, t.v, o), __shfl_xor_sync(0xffffffffu, t.i, o)};
      t = better_of(t, u);
    }
    if (lane == 0) sv[0] = t.v, si[0] = t.i;
  }
  __syncthreads();
  const float v = sv[0];
  const int32_t i = si[0];
  return (i < 0 || v == -INFINITY) ? 0 : i;
}

__global__ void argmax_kernel(const float* __restrict__ logits, int64_t V, int32_t* __restrict__ out) {
  const int32_t r = block_argmax(logits + blockIdx.x * V, V);
  if (threadIdx.x == 0) out[blockIdx.x] = r;
}

enum class Weight { One, Prob, ProbOverTotal };

struct SelectResult {
  bool found;
  uint64_t key;
};

// Weighted radix select over the elements with key >= lower (see the file comment): the element
// where the cumulative weight in descending key order first reaches target (>= target, or
// > target when strict). found = false when the total weight never gets there.
template <Weight W>
__device__ SelectResult radix_select(const float* row, int64_t V, uint64_t lower, float mx, double temp,
                                     double total, double target, bool strict) {
  __shared__ double hist[256];
  __shared__ int cnt[256];
  __shared__ uint64_t s_prefix, s_mask;
  __shared__ double s_above;
  __shared__ int s_found;
  if (threadIdx.x == 0) s_prefix = 0, s_mask = 0, s_above = 0, s_found = 1;
  for (int pass = 0; pass < 8; pass++) {
    const int shift = 56 - 8 * pass;
    for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0, cnt[d] = 0;
    __syncthreads();
    const uint64_t prefix = s_prefix, mask = s_mask;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float l = row[i];
      const uint64_t k = sort_key(l, i);
      if (k < lower || (k & mask) != prefix) continue;
      double w = 1.0;
      if (W != Weight::One) {
        w = isnan(l) ? 0.0 : exp(double(l - mx) / temp);
        if (W == Weight::ProbOverTotal) w /= total;
      }
      const int d = int((k >> shift) & 0xFF);
      atomicAdd(&hist[d], w);
      atomicAdd(&cnt[d], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double cum = s_above;
      int chosen = -1, last_nonempty = -1;
      for (int d = 255; d >= 0; d--) {
        if (!cnt[d]) continue;
        last_nonempty = d;
        const double next = cum + hist[d];
        if (strict ? next > target : next >= target) {
          chosen = d;
          break;
        }
        cum = next;
      }
      if (chosen < 0) {
        if (pass == 0) {
          s_found = 0;
        } else {
          // rounding of the re-summed histogram: take the last element under the prefix
          chosen = last_nonempty;
          cum = s_above;
          for (int d = 255; d > chosen; d--) cum += hist[d];
        }
      }
      if (chosen >= 0) {
        s_above = cum;
        s_prefix = prefix | (uint64_t(chosen) << shift);
        s_mask = mask | (uint64_t(0xFF) << shift);
      }
    }
    __syncthreads();
    if (!s_found) break;
  }
  SelectResult r{s_found != 0, s_prefix};
  __syncthreads();
  return r;
}

// Sum of exp((l - mx) / T) over the elements with key >= lower.
__device__ double block_mass(const float* row, int64_t V, uint64_t lower, float mx, double temp) {
  __shared__ double red[32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float l = row[i];
    if (isnan(l) || sort_key(l, i) < lower) continue;
    s += exp(double(l - mx) / temp);
  }
  return detail::block_sum(s, red);
}

// The smallest key >= lower (the last candidate in the CPU's order).
__device__ uint64_t block_min_key(const float* row, int64_t V, uint64_t lower) {
  __shared__ unsigned long long red[32];
  unsigned long long m = ~0ull;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const uint64_t k = sort_key(row[i], i);
    if (k >= lower && k < m) m = k;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long t = __shfl_xor_sync(0xffffffffu, m, o);
    m = t < m ? t : m;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = m;
  __syncthreads();
  if (warp == 0) {
    unsigned long long t = lane < warps ? red[lane] : ~0ull;
    for (int o = 16; o > 0; o >>= 1) {
      const unsigned long long q = __shfl_xor_sync(0xffffffffu, t, o);
      t = q < t ? q : t;
    }
    if (lane == 0) red[0] = t;
  }
  __syncthreads();
  const uint64_t r = red[0];
  __syncthreads();
  return r;
}

__device__ float block_max_finite(const float* row, int64_t V, bool* any) {
  __shared__ float red[32];
  __shared__ int found[32];
  float m = -INFINITY;
  int f = 0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float l = row[i];
    if (!isnan(l)) m = fmaxf(m, l), f = 1;
  }
  for (int o = 16; o > 0; o >>= 1) {
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    f |= __shfl_xor_sync(0xffffffffu, f, o);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = m, found[warp] = f;
  __syncthreads();
  if (warp == 0) {
    float t = lane < warps ? red[lane] : -INFINITY;
    int g = lane < warps ? found[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) {
      t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
      g |= __shfl_xor_sync(0xffffffffu, g, o);
    }
    if (lane == 0) red[0] = t, found[0] = g;
  }
  __syncthreads();
  *any = found[0] != 0;
  const float r = red[0];
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* __restrict__ logits, int64_t V, float temperature, int top_k, float top_p,
                              const uint64_t* __restrict__ seeds, const uint64_t* __restrict__ counters,
                              int32_t* __restrict__ out) {
  const float* row = logits + blockIdx.x * V;
  if (temperature <= 0.f || top_k == 1) {
    const int32_t r = block_argmax(row, V);
    if (threadIdx.x == 0) out[blockIdx.x] = r;
    return;
  }
  // the largest non-NaN logit is the first candidate's (the CPU's mx)
  bool any = false;
  const float mx = block_max_finite(row, V, &any);
  if (!any || !isfinite(mx)) {
    const int32_t r = block_argmax(row, V);
    if (threadIdx.x == 0) out[blockIdx.x] = r;
    return;
  }
  const double temp = double(temperature);
  // top-k: the k-th largest key
  uint64_t lower = 0;
  if (top_k > 0 && int64_t(top_k) < V) {
    const SelectResult s = radix_select<Weight::One>(row, V, 0, mx, temp, 1.0, double(top_k), false);
    lower = s.key;  // always found: k <= V elements
  }
  double total = block_mass(row, V, lower, mx, temp);
  // top-p: the smallest prefix whose normalised mass reaches top_p (else keep every candidate)
  if (top_p < 1.f) {
    const SelectResult s = radix_select<Weight::ProbOverTotal>(row, V, lower, mx, temp, total, double(top_p), false);
    if (s.found) {
      lower = s.key;
      total = block_mass(row, V, lower, mx, temp);
    }
  }
  const double u = uniform01(seeds[blockIdx.x], counters[blockIdx.x]) * total;
  const SelectResult s = radix_select<Weight::Prob>(row, V, lower, mx, temp, total, u, true);
  // not reached (u within rounding of the total): the last kept candidate, as the CPU
  const uint64_t k = s.found ? s.key : block_min_key(row, V, lower);
  if (threadIdx.x == 0) out[blockIdx.x] = key_id(k);
}

}  // namespace

void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* out, void* stream) {
  if (rows <= 0) return;
  argmax_kernel<<<unsigned(rows), 256, 0, detail::as_stream(stream)>>>(logits, V, out);
  detail::check_launch("argmax_rows");
}

void sample_rows(const float* logits, int64_t rows, int64_t V, float temperature, int top_k, float top_p,
                 const uint64_t* seeds, const uint64_t* counters, int32_t* out, void* stream) {
  if (rows <= 0) return;
  sample_kernel<<<unsigned(rows), kThreads, 0, detail::as_stream(stream)>>>(logits, V, temperature, top_k, top_p, seeds,
                                                                           counters, out);
  detail::check_launch("sample_rows");
}

}  // namespace eggroll::cuda
