#pragma once
// The ES update on the host: g = (1/sqrt(N)) sum_i f_i E_i for every selected parameter. The
// population engine (es/ops_engine.h) computes the same update on a backend (Backend::
// update_factors + update_gemm); this host version is the reference the tests check it against.
// The update of a matrix is one GEMM: A_all B_all^T with the columns of every pair's A scaled by
// (f_2k - f_2k+1) sigma / sqrt(r N).
#include <cstdint>
#include <span>
#include <vector>

#include "es/noise.h"
#include "es/optim.h"
#include "es/perturbation.h"
#include "rwkv/model.h"

namespace eggroll {

// g = (1/sqrt(N)) sum_i f_i E_i for every selected parameter (N = fitness.size(), even),
// written into grads[pid] (resized; untouched for unselected ids). Matrices by one GEMM each.
// With a pair range, only the antithetic pairs [pair_begin, pair_end) contribute (the partial
// update one rank forms from its own members; the partial updates of all ranks sum to g).
void eggroll_gradient(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg, uint64_t epoch,
                      std::span<const float> fitness, std::vector<std::vector<float>>& grads,
                      size_t pair_begin = 0, size_t pair_end = SIZE_MAX);

}  // namespace eggroll
