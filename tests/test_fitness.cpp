// Fitness shaping: direction sums, z-score, centered ranks, raw, non-finite rewards.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "es/fitness.h"

using namespace eggroll;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

FitnessResult shape(const std::vector<double>& r, size_t g,
                    FitnessShaping s = FitnessShaping::ZScore) {
  return shape_fitness(std::span<const double>(r), g, s);
}
void all_finite(const FitnessResult& r) {
  for (float f : r.fitness) REQUIRE(std::isfinite(f));
}
}  // namespace

TEST_CASE("z-score over direction sums (hand computed)", "[fitness]") {
  // G = 4 directions, P = 2 prompts: generation j -> direction j % 4.
  const std::vector<double> rewards = {1, 0, 0.1, 0,    // prompt 0
                                       1, 1, 0, 0.1};   // prompt 1
  const auto r = shape(rewards, 4);
  REQUIRE(r.direction_score.size() == 4);
  CHECK(r.direction_score[0] == Approx(2.0));
  CHECK(r.direction_score[1] == Approx(1.0));
  CHECK(r.direction_score[2] == Approx(0.1));
  CHECK(r.direction_score[3] == Approx(0.1));
  // mean 0.8, population var = (1.44 + 0.04 + 0.49 + 0.49) / 4 = 0.615
  const double d = std::sqrt(0.615 + 1e-5);
  REQUIRE(r.fitness.size() == 4);
  CHECK(r.fitness[0] == Approx(1.2 / d));
  CHECK(r.fitness[1] == Approx(0.2 / d));
  CHECK(r.fitness[2] == Approx(-0.7 / d));
  CHECK(r.fitness[3] == Approx(-0.7 / d));
  CHECK(r.nonfinite == 0);
  // raw reward statistics over the 8 generations
  CHECK(r.mean == Approx(3.2 / 8));
  CHECK(r.min == 0.0);
  CHECK(r.max == 1.0);
  double var = 0;
  for (double x : rewards) var += (x - 0.4) * (x - 0.4);
  CHECK(r.std == Approx(std::sqrt(var / 8)));
}

TEST_CASE("z-score epsilon matters for tiny variance", "[fitness]") {
  const auto r = shape({0.0, 0.001}, 2);
  // mean 0.0005, var 2.5e-7: (x - mean) / sqrt(var + 1e-5)
  const double d = std::sqrt(2.5e-7 + 1e-5);
  CHECK(r.fitness[0] == Approx(-0.0005 / d));
  CHECK(r.fitness[1] == Approx(0.0005 / d));
}

TEST_CASE("all-equal rewards give zero fitness", "[fitness]") {
  for (auto s : {FitnessShaping::ZScore, FitnessShaping::CenteredRank}) {
    const auto r = shape({0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, 6, s);
    all_finite(r);
    for (float f : r.fitness) CHECK(f == 0.0f);
  }
  const auto z = shape({0, 0, 0, 0}, 2);
  for (float f : z.fitness) CHECK(f == 0.0f);
}

TEST_CASE("centered ranks", "[fitness]") {
  // distinct scores: ranks 2, 0, 3, 1 -> (r + 0.5) / 4 - 0.5
  auto r = shape({5, -1, 7, 0}, 4, FitnessShaping::CenteredRank);
  CHECK(r.fitness[0] == Approx(0.125));
  CHECK(r.fitness[1] == Approx(-0.375));
  CHECK(r.fitness[2] == Approx(0.375));
  CHECK(r.fitness[3] == Approx(-0.125));
  // ties share the average rank: scores 1, 1, 0, 2 -> ranks 1.5, 1.5, 0, 3
  r = shape({1, 1, 0, 2}, 4, FitnessShaping::CenteredRank);
  CHECK(r.fitness[0] == Approx(0.0));
  CHECK(r.fitness[1] == Approx(0.0));
  CHECK(r.fitness[2] == Approx(-0.375));
  CHECK(r.fitness[3] == Approx(0.375));
  // mean is exactly 0
  r = shape({3, 1, 4, 1, 5, 9, 2, 6}, 8, FitnessShaping::CenteredRank);
  double sum = 0;
  for (float f : r.fitness) sum += f;
  CHECK(sum == Approx(0.0).margin(1e-7));
  // direction sums are ranked, not single rewards: G = 2, P = 2
  r = shape({0, 1, 5, 1}, 2, FitnessShaping::CenteredRank);  // sums 5, 2
  CHECK(r.fitness[0] == Approx(0.25));
  CHECK(r.fitness[1] == Approx(-0.25));
}

TEST_CASE("raw shaping returns the direction sums", "[fitness]") {
  const auto r = shape({1, 2, 3, 4, 5, 6}, 3, FitnessShaping::Raw);
  REQUIRE(r.fitness.size() == 3);
  CHECK(r.fitness[0] == 5.0f);
  CHECK(r.fitness[1] == 7.0f);
  CHECK(r.fitness[2] == 9.0f);
}

TEST_CASE("non-finite rewards count as the worst finite reward", "[fitness]") {
  auto r = shape({1.0, kNaN, 0.5, kInf, -kInf, 2.0}, 6);
  CHECK(r.nonfinite == 3);
  all_finite(r);
  REQUIRE(r.direction_score.size() == 6);
  CHECK(r.direction_score[1] == 0.5);
  CHECK(r.direction_score[3] == 0.5);
  CHECK(r.direction_score[4] == 0.5);
  CHECK(r.min == 0.5);
  CHECK(r.max == 2.0);
  CHECK(r.mean == Approx(3.5 / 3));
  // the same as if they had been the minimum
  const auto same = shape({1.0, 0.5, 0.5, 0.5, 0.5, 2.0}, 6);
  for (size_t i = 0; i < 6; ++i) CHECK(r.fitness[i] == same.fitness[i]);

  for (auto s : {FitnessShaping::ZScore, FitnessShaping::CenteredRank, FitnessShaping::Raw}) {
    // none finite: all count as 0
    r = shape({kNaN, kInf, -kInf, kNaN}, 2, s);
    CHECK(r.nonfinite == 4);
    all_finite(r);
    for (float f : r.fitness) CHECK(f == 0.0f);
    CHECK(r.mean == 0.0);
    CHECK(r.std == 0.0);
    CHECK(r.min == 0.0);
    CHECK(r.max == 0.0);
  }
}

TEST_CASE("huge rewards stay finite", "[fitness]") {
  for (auto s : {FitnessShaping::ZScore, FitnessShaping::CenteredRank, FitnessShaping::Raw}) {
    const auto r = shape({1e308, 1e308, -1e308, 1e300, 0, 1}, 3, s);
    all_finite(r);
    CHECK(std::isfinite(r.mean));
    CHECK(std::isfinite(r.std));
  }
  const auto z = shape({1e200, -1e200}, 2);
  CHECK(z.fitness[0] == Approx(1.0));
  CHECK(z.fitness[1] == Approx(-1.0));
}

TEST_CASE("float overload and argument checks", "[fitness]") {
  const std::vector<float> rf = {1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f, 0.0f};
  const auto r = shape_fitness(std::span<const float>(rf), 2);
  CHECK(r.nonfinite == 1);
  CHECK(r.direction_score[0] == 4.0);
  CHECK(r.direction_score[1] == 0.0);
  const std::vector<double> five(5, 1.0);
  CHECK_THROWS_AS(shape(five, 2), std::invalid_argument);
  CHECK_THROWS_AS(shape(five, 0), std::invalid_argument);
  CHECK_THROWS_AS(shape({}, 2), std::invalid_argument);
  CHECK(parse_fitness_shaping("zscore") == FitnessShaping::ZScore);
  CHECK(parse_fitness_shaping("centered_rank") == FitnessShaping::CenteredRank);
  CHECK(parse_fitness_shaping("raw") == FitnessShaping::Raw);
  CHECK_THROWS_WITH(parse_fitness_shaping("softmax"), Catch::StartsWith("es.fitness_shaping:"));
  CHECK(std::string(fitness_shaping_name(FitnessShaping::CenteredRank)) == "centered_rank");
}
