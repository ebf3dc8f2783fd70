// Device and memory management of the CUDA backend (cuda/cuda_ops.h, "device and memory").
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

// ---- device and memory --------------------------------------------------------------------------

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string device_name(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return p.name;
}

void set_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }

int current_device() {
  int d = 0;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

size_t device_free_memory() {
  size_t free_b = 0, total = 0;
  check(cudaMemGetInfo(&free_b, &total), "cudaMemGetInfo");
  return free_b;
}

void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

void* malloc_bytes(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}
void free_bytes(void* p) {
  if (p) cudaFree(p);
}
void copy_to_device(void* dst, const void* host, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, as_stream(stream)), "cudaMemcpy H2D");
  check(cudaStreamSynchronize(as_stream(stream)), "cudaMemcpy H2D");  // host buffer may be freed after
}
void copy_to_host(void* host, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)), "cudaMemcpy D2H");
  check(cudaStreamSynchronize(as_stream(stream)), "cudaMemcpy D2H");
}
void copy_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, as_stream(stream)), "cudaMemcpy D2D");
}
void memset_zero(void* dst, size_t bytes, void* stream) {
  if (!bytes) return;
  check(cudaMemsetAsync(dst, 0, bytes, as_stream(stream)), "cudaMemset");
}
void stream_synchronize(void* stream) { check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize"); }

float* to_device(const float* host, size_t n) {
  float* d = static_cast<float*>(malloc_bytes(n * sizeof(float)));
  copy_to_device(d, host, n * sizeof(float));
  return d;
}
void to_host(const float* dev, float* host, size_t n) { copy_to_host(host, dev, n * sizeof(float)); }
void free_device(float* dev) { free_bytes(dev); }

}  // namespace eggroll::cuda
