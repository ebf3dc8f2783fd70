#include "es/fitness.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/error.h"

namespace eggroll {

FitnessShaping parse_fitness_shaping(std::string_view name, const std::string& where) {
  if (name == "zscore" || name == "z_score" || name == "z-score") return FitnessShaping::ZScore;
  if (name == "centered_rank" || name == "centered_ranks" || name == "rank")
    return FitnessShaping::CenteredRank;
  if (name == "raw") return FitnessShaping::Raw;
  throw InputError(where + ": unknown fitness shaping '" + std::string(name) +
                   "' (expected zscore, centered_rank or raw)");
}

const char* fitness_shaping_name(FitnessShaping s) {
  switch (s) {
    case FitnessShaping::ZScore: return "zscore";
    case FitnessShaping::CenteredRank: return "centered_rank";
    case FitnessShaping::Raw: return "raw";
  }
  return "zscore";
}

namespace {

float to_finite_float(double x) {
  if (std::isnan(x)) return 0.0f;
  return static_cast<float>(std::clamp(x, -static_cast<double>(FLT_MAX),
                                       static_cast<double>(FLT_MAX)));
}

}  // namespace

std::vector<float> zscore_fitness(std::span<const double> scores) {
  const size_t n = scores.size();
  std::vector<float> out(n, 0.0f);
  if (n == 0) return out;
  // All equal: exactly zero (the rounding of the mean would otherwise leave ~1e-14 values).
  if (std::all_of(scores.begin(), scores.end(), [&](double x) { return x == scores[0]; }))
    return out;
  // Computed on x / s with s = max(1, max |x|) so that huge scores cannot overflow the
  // variance; for |x| <= 1 (s = 1) this is exactly (x - mean) / sqrt(var + 1e-5).
  double s = 1.0;
  for (double x : scores) s = std::max(s, std::fabs(x));
  double mean = 0.0;
  for (double x : scores) mean += x / s;
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (double x : scores) {
    const double d = x / s - mean;
    var += d * d;
  }
  var /= static_cast<double>(n);
  const double denom = std::sqrt(var + 1e-5 / (s * s));
  if (!(denom > 0.0) || !std::isfinite(denom)) return out;
  for (size_t i = 0; i < n; ++i) out[i] = to_finite_float((scores[i] / s - mean) / denom);
  return out;
}

std::vector<float> centered_rank_fitness(std::span<const double> scores) {
  const size_t n = scores.size();
  std::vector<float> out(n, 0.0f);
  if (n == 0) return out;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    // Ranks i .. j-1 are tied: all get their average (i + j - 1) / 2.
    const double rank = 0.5 * static_cast<double>(i + j - 1);
    const double y = (rank + 0.5) / static_cast<double>(n) - 0.5;
    for (size_t k = i; k < j; ++k) out[order[k]] = static_cast<float>(y);
    i = j;
  }
  return out;
}

FitnessResult shape_fitness(std::span<const double> rewards, size_t directions,
                            FitnessShaping shaping) {
  if (directions == 0) throw std::invalid_argument("shape_fitness: directions must be > 0");
  if (rewards.empty() || rewards.size() % directions != 0)
    throw std::invalid_argument("shape_fitness: " + std::to_string(rewards.size()) +
                                " rewards is not a positive multiple of " +
                                std::to_string(directions) + " directions");
  FitnessResult r;
  // Statistics of the finite raw rewards, and the worst finite reward.
  size_t finite = 0;
  double lo = 0.0, hi = 0.0, sum = 0.0;
  for (double x : rewards) {
    if (!std::isfinite(x)) {
      ++r.nonfinite;
      continue;
    }
    if (finite == 0 || x < lo) lo = x;
    if (finite == 0 || x > hi) hi = x;
    sum += x;
    ++finite;
  }
  if (finite > 0) {
    r.min = lo;
    r.max = hi;
    r.mean = sum / static_cast<double>(finite);
    if (!std::isfinite(r.mean)) {  // the sum overflowed: redo it scaled
      double m = 0.0;
      for (double x : rewards)
        if (std::isfinite(x)) m += x / static_cast<double>(finite);
      r.mean = m;
    }
    double var = 0.0;
    for (double x : rewards)
      if (std::isfinite(x)) {
        const double d = (x - r.mean);
        var += d * d / static_cast<double>(finite);
      }
    r.std = std::isfinite(var) ? std::sqrt(var) : DBL_MAX;
  }
  const double worst = finite > 0 ? lo : 0.0;

  // Per-direction sums: generation j belongs to direction j % G.
  r.direction_score.assign(directions, 0.0);
  for (size_t j = 0; j < rewards.size(); ++j) {
    const double x = std::isfinite(rewards[j]) ? rewards[j] : worst;
    r.direction_score[j % directions] += x;
  }
  for (double& x : r.direction_score)
    if (!std::isfinite(x)) x = x > 0 ? DBL_MAX : -DBL_MAX;  // overflowed sum

  switch (shaping) {
    case FitnessShaping::ZScore: r.fitness = zscore_fitness(r.direction_score); break;
    case FitnessShaping::CenteredRank: r.fitness = centered_rank_fitness(r.direction_score); break;
    case FitnessShaping::Raw:
      r.fitness.resize(directions);
      for (size_t i = 0; i < directions; ++i) r.fitness[i] = to_finite_float(r.direction_score[i]);
      break;
  }
  return r;
}

FitnessResult shape_fitness(std::span<const float> rewards, size_t directions,
                            FitnessShaping shaping) {
  std::vector<double> d(rewards.begin(), rewards.end());
  return shape_fitness(std::span<const double>(d), directions, shaping);
}

}  // namespace eggroll
