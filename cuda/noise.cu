// EGGROLL noise on the device: Philox blocks, noise arrays and caches, the low-rank correction of
// a perturbed product, the embedding correction and full-rank vector noise.
// CPU references: ref::philox_blocks, fill_noise (core/noise.h), ref::fill_noise_cache,
// ref::lowrank_add, ref::embedding_lowrank_add, ref::vector_noise_rows (core/ops/noise.h).
//
// Factors are either generated here with the same Philox4x32-10 counters as core/noise.h
// (noise_block / noise_element are __host__ __device__: identical raw bits, and identical Gaussian
// values: core/philox.h's own log/sin/cos run here too) or read from a per-step cache laid
// out [pair][(m + n) r] exactly like Perturbation's.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"

namespace eggroll::cuda {

namespace {

// Reads element j of one member's factor array: from the cache, or generated, keeping the last
// generated block (consecutive j of one thread mostly hit it).
struct FactorReader {
  NoiseKey key;
  NoiseDist dist;
  const float* cached;  // this pair's array, or nullptr
  uint32_t block = 0xffffffffu;
  float v0 = 0.f, v1 = 0.f, v2 = 0.f, v3 = 0.f;

  __device__ float get(uint64_t j) {
    if (cached) return cached[j];
    const uint32_t b = uint32_t(j >> 2);
    if (b != block) {
      float v[4];
      noise_block_values(key, dist, b, v);
      v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
      block = b;
    }
    switch (j & 3u) {
      case 0: return v0;
      case 1: return v1;
      case 2: return v2;
      default: return v3;
    }
  }
};

__device__ __forceinline__ FactorReader reader_for(const NoiseSpec& ns, uint32_t pid, uint32_t member,
                                                   const float* cache, int64_t len) {
  FactorReader f;
  f.key = noise_spec_key(ns, pid, member);
  f.dist = ns.dist;
  f.cached = cache ? cache + int64_t(member / 2) * len : nullptr;
  return f;
}

__global__ void philox_blocks_kernel(const uint32_t* __restrict__ c, const uint32_t* __restrict__ k, int64_t n,
                                     uint32_t* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const Philox4x32 b = philox4x32_10(c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3], k[2 * i], k[2 * i + 1]);
#pragma unroll
    for (int w = 0; w < 4; w++) out[4 * i + w] = b.v[w];
  }
}

// One thread per Philox block overlapping [start, start + count).
__global__ void fill_noise_kernel(NoiseKey key, NoiseDist dist, uint64_t start, int64_t count, float* __restrict__ out) {
  const uint64_t end = start + uint64_t(count);
  const uint64_t b0 = start >> 2, nb = ((end - 1) >> 2) - b0 + 1;
  for (uint64_t t = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; t < nb; t += uint64_t(gridDim.x) * blockDim.x) {
    const uint64_t b = b0 + t;
    float v[4];
    noise_block_values(key, dist, uint32_t(b), v);
#pragma unroll
    for (int w = 0; w < 4; w++) {
      const uint64_t j = 4 * b + w;
      if (j >= start && j < end) out[j - start] = v[w];
    }
  }
}

__global__ void fill_cache_kernel(NoiseSpec ns, uint32_t pid, int64_t len, int64_t pairs, float* __restrict__ out) {
  const int64_t nb = (len + 3) / 4, total = nb * pairs;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = t / nb, b = t - p * nb;
    float v[4];
    noise_block_values(noise_spec_key(ns, pid, uint32_t(2 * p)), ns.dist, uint32_t(b), v);
    float* o = out + p * len;
#pragma unroll
    for (int w = 0; w < 4; w++)
      if (4 * b + w < len) o[4 * b + w] = v[w];
  }
}

// Low-rank correction, one block per row i (member members[i]):
//   t[q] = c * sum_k x[k] In[k, q]      (In: the factor contracted with x, at element in_base)
//   y[o] += sum_q Out[o, q] t[q]        (Out: the factor expanded to y, at element out_base)
// Phase 1 walks the Philox blocks of In (one per thread at a time), phase 2 gives each thread
// 4 consecutive outputs. R1: rank 1 (scalar accumulator).
template <bool R1>
__global__ void lowrank_kernel(NoiseSpec ns, uint32_t pid, int64_t len, const float* __restrict__ X, int64_t in,
                               float* __restrict__ Y, int64_t out, int64_t in_base, int64_t out_base,
                               const int32_t* __restrict__ members, const float* __restrict__ cache) {
  __shared__ float red[32];
  __shared__ float t_sh[kMaxDeviceRank];
  const int64_t i = blockIdx.x;
  const uint32_t mem = uint32_t(members[i]);
  const int r = R1 ? 1 : ns.rank;
  FactorReader f = reader_for(ns, pid, mem, cache, len);
  const float* x = X + i * in;
  float* y = Y + i * out;

  float acc[R1 ? 1 : kMaxDeviceRank];
#pragma unroll
  for (int q = 0; q < (R1 ? 1 : kMaxDeviceRank); q++) acc[q] = 0.f;
  const int64_t end = in_base + in * r;
  for (int64_t b = (in_base >> 2) + threadIdx.x; 4 * b < end; b += blockDim.x) {
#pragma unroll
    for (int w = 0; w < 4; w++) {
      const int64_t j = 4 * b + w;
      if (j < in_base || j >= end) continue;
      const float val = f.get(uint64_t(j));
      const int64_t e = j - in_base;
      if (R1) {
        acc[0] += x[e] * val;
      } else {
        const int64_t kx = e / r;
        acc[e - kx * r] += x[kx] * val;
      }
    }
  }
  const float c = noise_spec_lowrank_scale(ns, mem);
  for (int q = 0; q < r; q++) {
    const float s = detail::block_sum(acc[q], red);
    if (threadIdx.x == 0) t_sh[q] = s * c;
  }
  __syncthreads();

  f.block = 0xffffffffu;
  for (int64_t o0 = 4 * int64_t(threadIdx.x); o0 < out; o0 += 4 * int64_t(blockDim.x)) {
    const int64_t o1 = o0 + 4 < out ? o0 + 4 : out;
    for (int64_t o = o0; o < o1; o++) {
      float s = 0.f;
      for (int q = 0; q < r; q++) s += f.get(uint64_t(out_base + o * r + q)) * t_sh[q];
      y[o] += s;
    }
  }
}

// Embedding correction, one block per row: x[o] += c * sum_q Bf[o, q] A[tok, q].
__global__ void embedding_lowrank_kernel(NoiseSpec ns, uint32_t pid, int64_t m, int64_t n,
                                         const int32_t* __restrict__ tokens, float* __restrict__ X,
                                         const int32_t* __restrict__ members, const float* __restrict__ cache) {
  __shared__ float a_sh[kMaxDeviceRank];
  const int64_t i = blockIdx.x;
  const uint32_t mem = uint32_t(members[i]);
  const int r = ns.rank;
  const int64_t len = (m + n) * r;
  FactorReader f = reader_for(ns, pid, mem, cache, len);
  if (threadIdx.x == 0)
    for (int q = 0; q < r; q++) a_sh[q] = f.get(uint64_t(int64_t(tokens[i]) * r + q));
  __syncthreads();
  const float c = noise_spec_lowrank_scale(ns, mem);
  float* x = X + i * n;
  f.block = 0xffffffffu;
  for (int64_t o0 = 4 * int64_t(threadIdx.x); o0 < n; o0 += 4 * int64_t(blockDim.x)) {
    const int64_t o1 = o0 + 4 < n ? o0 + 4 : n;
    for (int64_t o = o0; o < o1; o++) {
      float acc = 0.f;
      for (int q = 0; q < r; q++) acc += f.get(uint64_t(m * r + o * r + q)) * a_sh[q];
      x[o] += c * acc;
    }
  }
}

// out[i, j] = base[j] + c_i eps_i[j]: one thread per (row, Philox block).
__global__ void vector_noise_kernel(NoiseSpec ns, uint32_t pid, const float* __restrict__ base, int64_t n,
                                    const int32_t* __restrict__ members, int64_t B, const float* __restrict__ cache,
                                    float* __restrict__ out) {
  const int64_t nb = (n + 3) / 4, total = nb * B;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t / nb, b = t - i * nb;
    const uint32_t mem = uint32_t(members[i]);
    const float c = noise_spec_vector_scale(ns, mem);
    FactorReader f = reader_for(ns, pid, mem, cache, n);
    for (int w = 0; w < 4; w++) {
      const int64_t j = 4 * b + w;
      if (j < n) out[i * n + j] = base[j] + c * f.get(uint64_t(j));
    }
  }
}

constexpr int kThreads = 256;

void check_rank(const NoiseSpec& ns, const char* what) {
  if (ns.rank < 1 || ns.rank > kMaxDeviceRank)
    throw std::invalid_argument(std::string(what) + ": rank " + std::to_string(ns.rank) + " outside [1, " +
                                std::to_string(kMaxDeviceRank) + "] (the device kernels' limit)");
}

void check_len(int64_t len, const char* what) {
  if (len < 0 || uint64_t(len) > kMaxNoiseElements)
    throw std::out_of_range(std::string(what) + ": noise array exceeds 2^34 elements");
}

}  // namespace

void philox_blocks(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out, void* stream) {
  if (n <= 0) return;
  philox_blocks_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, detail::as_stream(stream)>>>(counters, keys, n,
                                                                                                  out);
  detail::check_launch("philox_blocks");
}

void fill_noise(const NoiseKey& key, NoiseDist dist, uint64_t start, int64_t count, float* out, void* stream) {
  if (count <= 0) return;
  if (start > kMaxNoiseElements || uint64_t(count) > kMaxNoiseElements - start)
    throw std::out_of_range("cuda::fill_noise: range exceeds 2^34 elements");
  const int64_t nb = int64_t((((start + uint64_t(count) - 1) >> 2) - (start >> 2)) + 1);
  fill_noise_kernel<<<detail::grid_for(nb, kThreads), kThreads, 0, detail::as_stream(stream)>>>(key, dist, start,
                                                                                                count, out);
  detail::check_launch("fill_noise");
}

void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out, void* stream) {
  if (len <= 0 || pairs <= 0) return;
  check_len(len, "fill_noise_cache");
  fill_cache_kernel<<<detail::grid_for(((len + 3) / 4) * pairs, kThreads), kThreads, 0, detail::as_stream(stream)>>>(
      ns, pid, len, pairs, out);
  detail::check_launch("fill_noise_cache");
}

void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X, float* Y,
                 const int32_t* members, int64_t B, const float* cache, void* stream) {
  if (B <= 0) return;
  check_rank(ns, "lowrank_add");
  const int64_t r = ns.rank, len = (m + n) * r;
  check_len(len, "lowrank_add");
  if (B > 0x7fffffffLL) throw std::invalid_argument("lowrank_add: too many rows");
  const int64_t in = x_times_p ? m : n, out = x_times_p ? n : m;
  const int64_t in_base = x_times_p ? 0 : m * r, out_base = x_times_p ? m * r : 0;
  if (ns.rank == 1)
    lowrank_kernel<true><<<unsigned(B), kThreads, 0, detail::as_stream(stream)>>>(ns, pid, len, X, in, Y, out, in_base,
                                                                                 out_base, members, cache);
  else
    lowrank_kernel<false><<<unsigned(B), kThreads, 0, detail::as_stream(stream)>>>(ns, pid, len, X, in, Y, out,
                                                                                  in_base, out_base, members, cache);
  detail::check_launch("lowrank_add");
}

void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* tokens, float* X,
                           const int32_t* members, int64_t B, const float* cache, void* stream) {
  if (B <= 0) return;
  check_rank(ns, "embedding_lowrank_add");
  check_len((m + n) * ns.rank, "embedding_lowrank_add");
  embedding_lowrank_kernel<<<unsigned(B), kThreads, 0, detail::as_stream(stream)>>>(ns, pid, m, n, tokens, X, members,
                                                                                    cache);
  detail::check_launch("embedding_lowrank_add");
}

void vector_noise_rows(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* members,
                       int64_t B, const float* cache, float* out, void* stream) {
  if (B <= 0 || n <= 0) return;
  check_len(n, "vector_noise_rows");
  vector_noise_kernel<<<detail::grid_for(((n + 3) / 4) * B, kThreads), kThreads, 0, detail::as_stream(stream)>>>(
      ns, pid, base, n, members, B, cache, out);
  detail::check_launch("vector_noise_rows");
}

}  // namespace eggroll::cuda
