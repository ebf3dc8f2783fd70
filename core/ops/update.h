#pragma once
// The ES update and the optimizers: the update GEMM's operands, vector gradients, SGD/Adam.
// CPU reference ops (namespace eggroll::ref): the definition of what every backend computes.
// The CUDA kernels of the same group live in cuda/update.cu under the same names; the op table
// (tests/test_backend_ops.cpp) runs both against these. docs/architecture.md lists the groups.
//
// Conventions: row-major arrays; B rows ("batch", one per generation); C = n_embd; H heads of
// 64. A per-row vector parameter is (pointer, stride): row i reads p + i * stride (stride 0 =
// shared by all rows, stride n = one perturbed copy per row). State arrays hold one slot per
// member: member `slot` of layer l starts at base + slot * slot_stride + layer_offset.
#include <cstddef>
#include <cstdint>
#include "core/noise.h"


namespace eggroll {
namespace ref {

// The two operands of the update GEMM of matrix pid (m x n) from the antithetic pairs
// [pair_begin, pair_begin + pairs) of a population of N members (fitness [N]; all pairs:
// 0, N / 2): A_all [m][pairs r], columns of pair k scaled by (f_2k - f_2k+1) sigma / sqrt(r N)
// (coefficient in double, rounded to float once); B_all [n][pairs r].
// g = A_all B_all^T (linear_f32(B_all, false, A_all, g, m, pairs r, n)). A pair range gives
// one rank's partial update; the cache holds every pair.
void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness, int64_t N,
                    int64_t pair_begin, int64_t pairs, const float* cache, float* A_all, float* B_all);
// Full-rank vector gradient: g[j] = sum_k coef_k eps_k[j] (pairs of the range, in order).
void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                     int64_t pair_begin, int64_t pairs, const float* cache, float* g);

// Optimizer steps on one array (the engine's, es/population_engine.h: ascent on g scaled by `scale` for clipping).
// Each returns the sum of squares of the applied change (for the update norm).
double sgd_update(float* w, const float* g, int64_t n, double lr, double scale);
// adamw = false: Adam with L2 weight decay folded into g; true: AdamW (decoupled decay).
// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t for the step t being taken.
double adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale);
double sum_squares(const float* x, int64_t n);  // in double, sequential

}  // namespace ref
}  // namespace eggroll
