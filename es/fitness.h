#pragma once
// Fitness shaping: per-generation rewards -> one fitness per direction (population member).
//
// Layout (as the reference's multi-GPU trainer): one ES step runs G directions (members; with
// antithetic pairs 2k, 2k+1) on P prompts, G*P generations in all; generation j uses prompt
// j / G and direction j % G. A direction's score is the sum of its P rewards; the scores are
// then shaped across the G directions:
//   ZScore        (x - mean) / sqrt(var + 1e-5), population variance (the reference default)
//   CenteredRank  (rank + 0.5) / G - 0.5, in (-0.5, 0.5), mean 0. Tied scores share the
//                 average of their ranks (deterministic and sign-symmetric: two antithetic
//                 members with equal scores get equal fitness, so ties add no update; the
//                 reference's argsort(argsort(x)) would break ties by member index instead)
//   Raw           the direction scores themselves
// Non-finite rewards (NaN, +-inf) are replaced by the worst score of the step (the minimum
// finite reward, or 0 if none is finite) and counted in `nonfinite`; the output is always
// finite.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eggroll {

enum class FitnessShaping { ZScore, CenteredRank, Raw };

// "zscore" (also "z_score", "z-score"), "centered_rank" (also "centered_ranks", "rank"), "raw";
// anything else: InputError naming `where`.
FitnessShaping parse_fitness_shaping(std::string_view name,
                                     const std::string& where = "es.fitness_shaping");
const char* fitness_shaping_name(FitnessShaping s);

struct FitnessResult {
  std::vector<float> fitness;           // G values, all finite
  std::vector<double> direction_score;  // G sums of the (sanitised) rewards, before shaping
  int nonfinite = 0;                    // rewards that were NaN or infinite
  // Statistics of the raw per-generation rewards, over the finite ones (all 0 when none).
  double mean = 0.0, std = 0.0, min = 0.0, max = 0.0;
};

// rewards.size() must be a positive multiple of `directions` (std::invalid_argument otherwise).
FitnessResult shape_fitness(std::span<const double> rewards, size_t directions,
                            FitnessShaping shaping = FitnessShaping::ZScore);
FitnessResult shape_fitness(std::span<const float> rewards, size_t directions,
                            FitnessShaping shaping = FitnessShaping::ZScore);

// The shaping functions on already-summed, finite scores.
std::vector<float> zscore_fitness(std::span<const double> scores);
std::vector<float> centered_rank_fitness(std::span<const double> scores);

}  // namespace eggroll
