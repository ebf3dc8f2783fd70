// Device-side model init, OpenES materialisation and the measured ceilings (cuda/init.h).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/init.h"

namespace eggroll::cuda {

namespace {

using detail::check;
using detail::check_launch;

// Each thread writes 4 consecutive elements (one 16-byte / 8-byte store); the tail of n % 4 is
// written element by element by the first threads.
__global__ void init_uniform_f32_kernel(float* __restrict__ out, int64_t n, uint64_t base, float lo, float hi) {
  const int64_t groups = n / 4, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += stride) {
    const uint64_t j = uint64_t(g) * 4;
    float4 v;
    v.x = init_value(base, j, lo, hi);
    v.y = init_value(base, j + 1, lo, hi);
    v.z = init_value(base, j + 2, lo, hi);
    v.w = init_value(base, j + 3, lo, hi);
    reinterpret_cast<float4*>(out)[g] = v;
  }
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t < n - groups * 4) out[groups * 4 + t] = init_value(base, uint64_t(groups * 4 + t), lo, hi);
}

__global__ void init_uniform_bf16_kernel(uint16_t* __restrict__ out, int64_t n, uint64_t base, float lo, float hi) {
  const int64_t groups = n / 4, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += stride) {
    const uint64_t j = uint64_t(g) * 4;
    ushort4 v;
    v.x = detail::f32_to_bf16_bits(init_value(base, j, lo, hi));
    v.y = detail::f32_to_bf16_bits(init_value(base, j + 1, lo, hi));
    v.z = detail::f32_to_bf16_bits(init_value(base, j + 2, lo, hi));
    v.w = detail::f32_to_bf16_bits(init_value(base, j + 3, lo, hi));
    reinterpret_cast<ushort4*>(out)[g] = v;
  }
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t < n - groups * 4)
    out[groups * 4 + t] = detail::f32_to_bf16_bits(init_value(base, uint64_t(groups * 4 + t), lo, hi));
}

// Storage of the perturbed arrays: fp32, or bf16 bits (4 elements move as one vector).
struct F32Store {
  using T = float;
  using Vec4 = float4;
  __device__ static float load(T x) { return x; }
  __device__ static T store(float x) { return x; }
};
struct Bf16Store {
  using T = uint16_t;
  using Vec4 = ushort4;
  __device__ static float load(T x) { return detail::bf16_bits_to_f32(x); }
  __device__ static T store(float x) { return detail::f32_to_bf16_bits(x); }
};

// One thread per Philox block (4 elements); the last block may be partial.
template <class S>
__global__ void perturb_kernel(NoiseKey key, NoiseDist dist, float scale, const typename S::T* base,
                               typename S::T* out, int64_t n) {
  const int64_t blocks = (n + 3) / 4, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks; b += stride) {
    float e[4];
    noise_block_values(key, dist, uint32_t(b), e);
    const int64_t j = b * 4;
    auto one = [&](typename S::T x, int q) { return S::store(ref::perturb_element(S::load(x), scale, e[q])); };
    if (j + 4 <= n) {
      typename S::Vec4 w = reinterpret_cast<const typename S::Vec4*>(base)[b];
      w.x = one(w.x, 0), w.y = one(w.y, 1), w.z = one(w.z, 2), w.w = one(w.w, 3);
      reinterpret_cast<typename S::Vec4*>(out)[b] = w;
    } else {
      for (int q = 0; j + q < n; q++) out[j + q] = one(base[j + q], q);
    }
  }
}

void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusString(s));
}

// Device buffers freed on scope exit (the measurements may throw).
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) { check(cudaMalloc(&p, bytes), "cudaMalloc (ceiling measurement)"); }
  ~Scratch() { cudaFree(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

struct Events {
  cudaEvent_t a = nullptr, b = nullptr;
  Events() {
    check(cudaEventCreate(&a), "cudaEventCreate");
    check(cudaEventCreate(&b), "cudaEventCreate");
  }
  ~Events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  // seconds between the two events, after waiting for the second
  double seconds() {
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    return double(ms) * 1e-3;
  }
};

}  // namespace

void init_uniform(void* out, bool bf16, int64_t n, uint64_t base, float lo, float hi, void* stream) {
  if (n <= 0) return;
  const int threads = 256;
  const unsigned grid = detail::grid_for((n + 3) / 4, threads);
  if (bf16)
    init_uniform_bf16_kernel<<<grid, threads, 0, detail::as_stream(stream)>>>(static_cast<uint16_t*>(out), n, base,
                                                                                lo, hi);
  else
    init_uniform_f32_kernel<<<grid, threads, 0, detail::as_stream(stream)>>>(static_cast<float*>(out), n, base, lo,
                                                                               hi);
  check_launch("init_uniform");
}

void perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const void* base, void* out, bool bf16, int64_t n,
                  void* stream) {
  if (n <= 0) return;
  if (uint64_t(n) > kMaxNoiseElements) throw std::out_of_range("perturb_full: more elements than one noise array holds");
  const int threads = 256;
  const unsigned grid = detail::grid_for((n + 3) / 4, threads);
  if (bf16)
    perturb_kernel<Bf16Store><<<grid, threads, 0, detail::as_stream(stream)>>>(
        key, dist, scale, static_cast<const uint16_t*>(base), static_cast<uint16_t*>(out), n);
  else
    perturb_kernel<F32Store><<<grid, threads, 0, detail::as_stream(stream)>>>(key, dist, scale,
                                                                          static_cast<const float*>(base),
                                                                          static_cast<float*>(out), n);
  check_launch("perturb_full");
}

double measure_gemm_bf16_tflops(int n, int reps, void* stream) {
  if (n <= 0 || reps <= 0) throw std::invalid_argument("measure_gemm_bf16_tflops: n and reps must be > 0");
  const size_t elems = size_t(n) * size_t(n);
  Scratch A(elems * 2), B(elems * 2), C(elems * 2);
  init_uniform(A.p, true, int64_t(elems), 1, -1.f, 1.f, stream);
  init_uniform(B.p, true, int64_t(elems), 2, -1.f, 1.f, stream);
  cublasHandle_t h = nullptr;
  cublas_check(cublasCreate(&h), "cublasCreate");
  struct HandleGuard {
    cublasHandle_t h;
    ~HandleGuard() { cublasDestroy(h); }
  } guard{h};
  cublas_check(cublasSetStream(h, detail::as_stream(stream)), "cublasSetStream");
  const float alpha = 1.f, beta = 0.f;
  auto gemm = [&] {
    cublas_check(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, A.p, CUDA_R_16BF, n, B.p, CUDA_R_16BF, n,
                              &beta, C.p, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (ceiling)");
  };
  for (int i = 0; i < 3; i++) gemm();
  Events ev;
  double best = 1e300;
  for (int i = 0; i < reps; i++) {
    check(cudaEventRecord(ev.a, detail::as_stream(stream)), "cudaEventRecord");
    gemm();
    check(cudaEventRecord(ev.b, detail::as_stream(stream)), "cudaEventRecord");
    best = std::min(best, ev.seconds());
  }
  return 2.0 * double(n) * double(n) * double(n) / best / 1e12;
}

double measure_copy_gbps(size_t bytes, int reps, void* stream) {
  if (bytes == 0 || reps <= 0) throw std::invalid_argument("measure_copy_gbps: bytes and reps must be > 0");
  Scratch src(bytes), dst(bytes);
  check(cudaMemsetAsync(src.p, 1, bytes, detail::as_stream(stream)), "cudaMemsetAsync");
  auto copy = [&] {
    check(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, detail::as_stream(stream)),
          "cudaMemcpyAsync (ceiling)");
  };
  copy();
  Events ev;
  double best = 1e300;
  for (int i = 0; i < reps; i++) {
    check(cudaEventRecord(ev.a, detail::as_stream(stream)), "cudaEventRecord");
    copy();
    check(cudaEventRecord(ev.b, detail::as_stream(stream)), "cudaEventRecord");
    best = std::min(best, ev.seconds());
  }
  return 2.0 * double(bytes) / best / 1e9;
}

size_t device_total_memory() {
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  return total_b;
}

}  // namespace eggroll::cuda
