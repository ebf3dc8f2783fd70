#pragma once
// exp for the CPU reference ops (core/ops/layer.cpp): our own definition, so that its bits do not
// depend on the C library, and branch-free, so that loops calling it vectorise (the compiler
// turns each operation below into its 16-lane form; every fused step is an explicit std::fma and
// no product is followed by a sum the compiler could fuse, so scalar and vector code give the
// same bits).
//
// x = n ln2 + r (n = round(x / ln2) to nearest even, ln2 in two parts so r is exact to ~2^-32),
// exp(r) = 1 + r + r^2 P(r) with a degree-5 polynomial (the Cephes expf coefficients), times 2^n.
// Error at most 1 ulp where the result is a normal float (tests/test_ref_math.cpp measures it). Beyond it:
// x > 88.3763 (where exp exceeds 2^127.5) gives +inf, x < -87.3365 (exp below FLT_MIN) gives 0,
// NaN stays NaN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace eggroll::ref {

inline float exp_f32(float x) {
  constexpr float kHi = 88.3762626647949f, kLo = -87.3365447505531f;
  constexpr float kShifter = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer (nearest even)
  const float xc = std::min(std::max(x, kLo), kHi);
  const float t = std::fma(xc, 1.44269504088896341f, kShifter);
  const float n = t - kShifter;
  int32_t ti;
  std::memcpy(&ti, &t, 4);
  const int32_t ni = ti - 0x4B400000;  // n as an integer, in [-126, 127]
  float r = std::fma(n, -0.693359375f, xc);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float r2 = r * r;
  const float y = std::fma(p, r2, r) + 1.f;
  const int32_t sbits = (ni + 127) << 23;
  float s;
  std::memcpy(&s, &sbits, 4);
  float res = y * s;
  res = x > kHi ? std::numeric_limits<float>::infinity() : res;
  res = x < kLo ? 0.f : res;
  return x != x ? x : res;
}

}  // namespace eggroll::ref
