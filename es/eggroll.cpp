#include "es/eggroll.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

#include "core/error.h"
#include "core/gemm.h"
#include "core/ops/ops.h"

namespace eggroll {

// ---- gradient -------------------------------------------------------------------------

void eggroll_gradient(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg, uint64_t epoch,
                      std::span<const float> fitness, std::vector<std::vector<float>>& grads, size_t pair_begin,
                      size_t pair_end) {
  const int64_t N = int64_t(fitness.size());
  if (N < 2 || N % 2) throw std::invalid_argument("eggroll_gradient: the population must be even and >= 2");
  const int64_t p0 = int64_t(std::min(pair_begin, size_t(N / 2)));
  const int64_t pairs = std::max<int64_t>(int64_t(std::min(pair_end, size_t(N / 2))) - p0, 0), r = cfg.rank;
  const NoiseSpec ns = noise_spec(cfg, epoch);
  grads.resize(m.params.size());
  std::vector<float> operands;
  for (int pid : sel.ids()) {
    const Param& p = m.params[size_t(pid)];
    auto& g = grads[size_t(pid)];
    g.assign(p.numel(), 0.f);
    if (pairs <= 0) continue;
    if (sel.lowrank[size_t(pid)]) {
      // the update GEMM: A_all [m, K] B_all [n, K]^T, K = pairs r
      const int64_t K = pairs * r;
      operands.resize(size_t((p.rows + p.cols) * K));
      float* A_all = operands.data();
      float* B_all = A_all + p.rows * K;
      ref::update_factors(ns, uint32_t(pid), p.rows, p.cols, fitness.data(), N, p0, pairs, nullptr, A_all, B_all);
      ref::linear_f32(B_all, false, A_all, g.data(), p.rows, K, p.cols);
    } else {
      ref::vector_gradient(ns, uint32_t(pid), int64_t(p.numel()), fitness.data(), N, p0, pairs, nullptr, g.data());
    }
  }
}

}  // namespace eggroll
