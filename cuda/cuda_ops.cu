#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/cuda_ops.h"

namespace eggroll::cuda {

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

__global__ void layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, float* __restrict__ y, int64_t n, float eps) {
  const float* xr = x + blockIdx.x * n;
  float* yr = y + blockIdx.x * n;
  __shared__ float red[2][32];
  float s = 0.f, ss = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) red[0][threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < (blockDim.x >> 5) ? red[0][threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (threadIdx.x == 0) red[0][0] = t;
  }
  __syncthreads();
  const float mean = red[0][0] / float(n);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float d = xr[i] - mean;
    ss += d * d;
  }
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) red[1][threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < (blockDim.x >> 5) ? red[1][threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (threadIdx.x == 0) red[1][0] = t;
  }
  __syncthreads();
  const float inv = rsqrtf(red[1][0] / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = (xr[i] - mean) * inv * w[i] + b[i];
}

// One block of 64 threads per (member, head); thread i owns row i of the state (value index).
__global__ void wkv7_kernel(float* __restrict__ S, const float* __restrict__ r, const float* __restrict__ decay,
                            const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ kk,
                            const float* __restrict__ a, float* __restrict__ y) {
  const int64_t h = blockIdx.x;
  const int i = threadIdx.x;
  __shared__ float sr[64], sd[64], sk[64], skk[64], sb[64];
  const int64_t o = h * 64;
  sr[i] = r[o + i], sd[i] = decay[o + i], sk[i] = k[o + i], skk[i] = kk[o + i], sb[i] = kk[o + i] * a[o + i];
  __syncthreads();
  float* Si = S + h * 4096 + i * 64;
  float row[64];
  float sa = 0.f;
#pragma unroll
  for (int j = 0; j < 64; j++) {
    row[j] = Si[j];
    sa -= row[j] * skk[j];
  }
  const float vi = v[o + i];
  float acc = 0.f;
#pragma unroll
  for (int j = 0; j < 64; j++) {
    float s = row[j] * sd[j] + sa * sb[j] + vi * sk[j];
    Si[j] = s;
    acc += s * sr[j];
  }
  y[o + i] = acc;
}
}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_name(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return p.name;
}

void layer_norm_rows(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t n, float eps,
                     void* stream) {
  if (rows <= 0) return;
  layer_norm_kernel<<<unsigned(rows), 256, 0, static_cast<cudaStream_t>(stream)>>>(x, w, b, y, n, eps);
  check(cudaGetLastError(), "layer_norm_rows");
}

void wkv7_heads(float* S, const float* r, const float* decay, const float* k, const float* v, const float* kk,
                const float* a, float* y, int64_t count, void* stream) {
  if (count <= 0) return;
  wkv7_kernel<<<unsigned(count), 64, 0, static_cast<cudaStream_t>(stream)>>>(S, r, decay, k, v, kk, a, y);
  check(cudaGetLastError(), "wkv7_heads");
}

float* to_device(const float* host, size_t n) {
  float* d = nullptr;
  check(cudaMalloc(&d, n * sizeof(float)), "cudaMalloc");
  check(cudaMemcpy(d, host, n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  return d;
}
void to_host(const float* dev, float* host, size_t n) {
  check(cudaMemcpy(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}
void free_device(float* dev) { cudaFree(dev); }
void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

}  // namespace eggroll::cuda
