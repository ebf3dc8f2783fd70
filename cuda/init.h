#pragma once
// The init op group on the device (CPU references: core/ops/init.h): model weights made on the device, the OpenES materialisation of a perturbed matrix, and the
// card's measured ceilings (for `eggroll bench es --backend cuda`, app/bench_cuda.h).
// No CUDA header here; streams are `void*` (nullptr = the legacy default stream).
//
// Each numeric kernel has its CPU reference in core/ops/init.h (namespace eggroll::ref), checked
// against it by the op table (tests/test_backend_ops.cpp) and tests/gpu_init_main.cpp:
//   init_uniform    <- ref::init_uniform (the element function of Model::random itself:
//                      core/ops/init.h init_value; identical bits, bf16 = its RNE rounding)
//   perturb_full    <- ref::perturb_full (identical bits: the noise is core/philox.h's own
//                      log/sin/cos on both sides, as for fill_noise)
//
// A model made on the device is BackendModel(backend, cfg, seed, dtype) (rwkv/backend_model.h,
// through CudaBackend::init_uniform): parameter pid gets
// init_uniform(base = init_param_base(seed, pid), [lo, hi) = init_range(name, shape)), so its
// fp32 values equal Model::random(cfg, seed)'s bit for bit and its bf16 values are their
// round-to-nearest-even, exactly what BackendModel(backend, Model::random(cfg, seed), ...) uploads.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/noise.h"
#include "core/ops/init.h"

namespace eggroll::cuda {

// out[j] = init_value(base, j, lo, hi) for j < n: fp32, or bf16 bits (round to nearest even).
// out aligned as cudaMalloc returns it.
void init_uniform(void* out, bool bf16, int64_t n, uint64_t base, float lo, float hi, void* stream = nullptr);

// OpenES materialisation of one member's full-rank perturbation of one parameter:
//   out[j] = base[j] + scale * noise_element(key, dist, j)   (one fmaf, fp32 arithmetic)
// for j < n (n <= kMaxNoiseElements); base and out fp32, or both bf16 bits (read widened, the
// result rounded to nearest even). out may equal base (in place). Both pointers aligned as
// cudaMalloc returns them (the kernel reads and writes 4 elements at a time).
void perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const void* base, void* out, bool bf16,
                  int64_t n, void* stream = nullptr);

// ---- measured ceilings ---------------------------------------------------------------------------
// Dense bf16 GEMM throughput: C[n, n] = A B (bf16 operands and output, fp32 accumulation,
// cublasGemmEx), best of `reps` timed calls after warm-up: 2 n^3 / seconds / 1e12.
double measure_gemm_bf16_tflops(int n = 8192, int reps = 20, void* stream = nullptr);
// Device memory bandwidth: a device-to-device copy of `bytes`, best of `reps` timed copies:
// (bytes read + bytes written) / seconds / 1e9.
double measure_copy_gbps(size_t bytes = size_t(2) << 30, int reps = 10, void* stream = nullptr);
size_t device_total_memory();  // bytes on the current device

}  // namespace eggroll::cuda
