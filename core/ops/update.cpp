#include "core/ops/update.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>
#include "core/ops/factor_array.h"
#include "core/parallel.h"

namespace eggroll {
namespace ref {
using detail::factor_array;
using detail::FactorBuffer;

namespace {
// Coefficients of pairs [p0, p0 + np) (index k - p0).
std::vector<double> pair_coefficients(const NoiseSpec& ns, const float* fitness, int64_t N, int64_t p0, int64_t np) {
  if (N < 2 || N % 2) throw std::invalid_argument("update: the population must be even and >= 2");
  if (p0 < 0 || np < 0 || p0 + np > N / 2) throw std::invalid_argument("update: pair range outside the population");
  std::vector<double> coef(static_cast<size_t>(np));
  for (int64_t k = p0; k < p0 + np; k++)
    coef[size_t(k - p0)] = double(fitness[2 * k] - fitness[2 * k + 1]) * ns.sigma / std::sqrt(double(N));
  return coef;
}
}  // namespace

void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness, int64_t N,
                    int64_t pair_begin, int64_t pairs, const float* cache, float* A_all, float* B_all) {
  const auto coef = pair_coefficients(ns, fitness, N, pair_begin, pairs);
  const int64_t r = ns.rank, K = pairs * r, len = (m + n) * r;
  parallel_for(pairs, 1, [&](int64_t k) {
    FactorBuffer buf;
    {
      const float* f = factor_array(ns, pid, uint32_t(2 * (pair_begin + k)), len, cache, buf);
      const float s = float(coef[size_t(k)] / std::sqrt(double(r)));
      for (int64_t o = 0; o < m; o++)
        for (int64_t q = 0; q < r; q++) A_all[o * K + k * r + q] = s * f[o * r + q];
      for (int64_t j = 0; j < n; j++)
        for (int64_t q = 0; q < r; q++) B_all[j * K + k * r + q] = f[m * r + j * r + q];
    }
  });
}

void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                     int64_t pair_begin, int64_t pairs, const float* cache, float* g) {
  const auto coef = pair_coefficients(ns, fitness, N, pair_begin, pairs);
  FactorBuffer buf;
  std::fill_n(g, n, 0.f);
  for (int64_t k = 0; k < pairs; k++) {
    const float* eps = factor_array(ns, pid, uint32_t(2 * (pair_begin + k)), n, cache, buf);
    const float s = float(coef[size_t(k)]);
    for (int64_t j = 0; j < n; j++) g[j] += s * eps[j];
  }
}

namespace {
// Runs body(j) for j < n in fixed chunks (in parallel) and returns the sum of what each chunk's
// body calls returned, chunk sums added in chunk order: the result does not depend on the
// number of threads.
template <class F>
double chunked_sum(int64_t n, F&& body) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(std::max<int64_t>(chunks, 0)), 0.0);
  parallel_for(chunks, 1, [&](int64_t c) {
    double s = 0;
    for (int64_t j = c * kChunk; j < std::min(n, (c + 1) * kChunk); j++) s += body(j);
    part[size_t(c)] = s;
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

// w = float(w + delta); returns the square of the change actually applied.
inline double apply_change(float& w, double delta) {
  const float before = w;
  w = float(before + delta);
  const double d = double(w) - before;
  return d * d;
}
}  // namespace

double sgd_update(float* w, const float* g, int64_t n, double lr, double scale) {
  return chunked_sum(n, [&](int64_t j) { return apply_change(w[j], lr * (double(g[j]) * scale)); });
}

double adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale) {
  return chunked_sum(n, [&](int64_t j) {
    double gj = double(g[j]) * scale;
    if (!adamw && weight_decay > 0) gj -= weight_decay * w[j];
    m1[j] = float(beta1 * m1[j] + (1 - beta1) * gj);
    m2[j] = float(beta2 * m2[j] + (1 - beta2) * gj * gj);
    double delta = lr * (m1[j] / bc1) / (std::sqrt(m2[j] / bc2) + eps);
    if (adamw) delta -= lr * weight_decay * w[j];
    return apply_change(w[j], delta);
  });
}

double sum_squares(const float* x, int64_t n) {
  return chunked_sum(n, [&](int64_t j) { return double(x[j]) * x[j]; });
}

}  // namespace ref
}  // namespace eggroll
