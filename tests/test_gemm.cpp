// The batch-invariant GEMM against a float64 reference, and its invariance to the batch.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "core/gemm.h"

using namespace eggroll;

namespace {
std::vector<float> randv(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
}  // namespace

TEST_CASE("gemm_xwt and gemm_xp match a float64 reference", "[gemm]") {
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 17, 5}, {6, 256, 64},
                               {7, 300, 130}, {13, 513, 70}, {64, 768, 96}}) {
    INFO(rows << "x" << in << "x" << out);
    auto X = randv(size_t(rows * in), 1), W = randv(size_t(out * in), 2);
    std::vector<float> Y(size_t(rows * out)), Z(size_t(rows * out));
    std::vector<float> P(size_t(in * out));  // P = W^T
    for (int64_t o = 0; o < out; o++)
      for (int64_t k = 0; k < in; k++) P[size_t(k * out + o)] = W[size_t(o * in + k)];
    gemm_xwt(X.data(), W.data(), Y.data(), rows, in, out);
    gemm_xp(X.data(), P.data(), Z.data(), rows, in, out);
    double worst = 0;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t o = 0; o < out; o++) {
        double ref = 0;
        for (int64_t k = 0; k < in; k++) ref += double(X[size_t(r * in + k)]) * W[size_t(o * in + k)];
        worst = std::max(worst, std::fabs(ref - Y[size_t(r * out + o)]) / std::sqrt(double(in)));
        // both forms accumulate in the same order
        CHECK(Y[size_t(r * out + o)] == Z[size_t(r * out + o)]);
      }
    CHECK(worst < 1e-6);
  }
}

TEST_CASE("a row's result does not depend on the other rows", "[gemm]") {
  const int64_t in = 700, out = 150;
  auto X = randv(size_t(64 * in), 3), W = randv(size_t(out * in), 4);
  std::vector<float> all(static_cast<size_t>(64 * out)), one(static_cast<size_t>(out));
  gemm_xwt(X.data(), W.data(), all.data(), 64, in, out);
  for (int64_t r : {0, 5, 6, 31, 63}) {
    gemm_xwt(X.data() + r * in, W.data(), one.data(), 1, in, out);
    for (int64_t o = 0; o < out; o++) REQUIRE(one[size_t(o)] == all[size_t(r * out + o)]);
  }
}

TEST_CASE("pre-packed weights give bit-identical products", "[gemm]") {
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 5, 3}, {7, 300, 130}, {13, 513, 64}, {2, 256, 65}}) {
    INFO(rows << "x" << in << "x" << out);
    auto X = randv(size_t(rows * in), 5), W = randv(size_t(out * in), 6);
    std::vector<float> a(size_t(rows * out)), b(size_t(rows * out));
    gemm_xwt(X.data(), W.data(), a.data(), rows, in, out);
    PackedWeights P = pack_weights(W.data(), in, out);
    gemm_packed(X.data(), P, b.data(), rows);
    CHECK(a == b);
  }
}
