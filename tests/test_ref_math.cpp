// exp_f32 (core/ops/exp_f32.h): the exp of the CPU reference ops, against float64 exp, at the
// range ends, and the same bits from a loop the compiler vectorises as from one call at a time.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/ops/exp_f32.h"

using eggroll::ref::exp_f32;

namespace {
// one call at a time (never vectorised)
__attribute__((noinline)) float exp_one(float x) { return exp_f32(x); }
// a loop over an array (vectorised at -O3 with AVX2/AVX-512)
__attribute__((noinline)) void exp_loop(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = exp_f32(x[i]);
}
float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

TEST_CASE("exp_f32 is within 1 ulp of exp over its normal range, and a vectorised loop gives the same bits", "[ops]") {
  // every 512th float from -87.3 to 88.37 (both signs, all exponents in range)
  std::vector<float> x;
  for (uint32_t u = 0; u < 0x42b0c000u; u += 512) x.push_back(bits_to_float(u));               // 0 .. 88.375
  for (uint32_t u = 0x80000000u; u < 0xc2aea000u; u += 512) x.push_back(bits_to_float(u));     // -0 .. -87.3
  std::vector<float> y(x.size());
  exp_loop(x.data(), y.data(), int64_t(x.size()));
  double worst = 0;
  size_t mismatched = 0;
  for (size_t i = 0; i < x.size(); i++) {
    const float one = exp_one(x[i]);
    if (std::memcmp(&one, &y[i], 4) != 0) mismatched++;
    const double want = std::exp(double(x[i]));
    if (want < double(std::numeric_limits<float>::min())) continue;  // subnormal results: below
    const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
    worst = std::max(worst, std::fabs(double(y[i]) - want) / ulp);
  }
  INFO(x.size() << " inputs");
  CHECK(mismatched == 0);
  CHECK(worst <= 1.0);
  CHECK(worst > 0.0);  // it is an approximation: the check above measured something
}

TEST_CASE("exp_f32 at the range ends and on special values", "[ops]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(exp_f32(0.f) == 1.f);
  CHECK(exp_f32(-0.f) == 1.f);
  CHECK(exp_f32(88.37f) == Approx(std::exp(double(88.37f))).epsilon(1e-6));
  CHECK(exp_f32(88.38f) == inf);  // above 2^127.5: +inf by definition
  CHECK(exp_f32(100.f) == inf);
  CHECK(exp_f32(inf) == inf);
  CHECK(exp_f32(-87.33f) == Approx(std::exp(double(-87.33f))).epsilon(1e-5));  // the smallest normal results
  CHECK(exp_f32(-87.34f) == 0.f);  // below FLT_MIN: 0
  CHECK(exp_f32(-inf) == 0.f);
  CHECK(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(exp_f32(-std::numeric_limits<float>::quiet_NaN())));
}
