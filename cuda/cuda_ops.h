#pragma once
// CUDA backend ops. Kernels take raw device pointers (no framework types inside); each op has
// its CPU reference in rwkv/forward.h (layer_norm_row, wkv7_head) and a test comparing them
// (tests/test_cuda_ops.cpp, label "gpu": skipped where no GPU exists).
#include <cstdint>
#include <string>

namespace eggroll::cuda {

// Number of usable CUDA devices (0 when there is no driver or no GPU).
int device_count();
std::string device_name(int device);

// y[rows, n] = LayerNorm(x[rows, n]) * w + b (eps), one block per row.
void layer_norm_rows(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t n, float eps,
                     void* stream = nullptr);
// WKV-7 update for `count` (member, head) pairs: S [count][64][64], vectors [count][64]; y [count][64].
void wkv7_heads(float* S, const float* r, const float* decay, const float* k, const float* v, const float* kk,
                const float* a, float* y, int64_t count, void* stream = nullptr);

// Host-side helpers for tests: copy to/from device, synchronise, free. Throw std::runtime_error on CUDA errors.
float* to_device(const float* host, size_t n);
void to_host(const float* dev, float* host, size_t n);
void free_device(float* dev);
void synchronize();

}  // namespace eggroll::cuda
