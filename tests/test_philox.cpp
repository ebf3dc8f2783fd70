// Philox4x32-10: known answers (the Random123 / cuRAND test vectors; docs/architecture.md, "Noise") and the
// float helpers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>

#include "core/noise.h"
#include "core/philox.h"

using namespace eggroll;

namespace {
void check_kat(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
               uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3) {
  const Philox4x32 r = philox4x32_10(c0, c1, c2, c3, k0, k1);
  CHECK(r.v[0] == e0);
  CHECK(r.v[1] == e1);
  CHECK(r.v[2] == e2);
  CHECK(r.v[3] == e3);
}
}  // namespace

TEST_CASE("philox4x32_10 known answers", "[philox]") {
  check_kat(0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
  check_kat(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
            0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
  check_kat(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u,
            0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST_CASE("philox struct and scalar entry points agree", "[philox]") {
  Philox4x32 c{{1u, 2u, 3u, 4u}};
  PhiloxKey k{{5u, 6u}};
  const Philox4x32 a = philox4x32_10(c, k);
  const Philox4x32 b = philox4x32_10(1u, 2u, 3u, 4u, 5u, 6u);
  for (int i = 0; i < 4; ++i) CHECK(a.v[i] == b.v[i]);
  // A one-bit change of counter or key changes every word (avalanche).
  const Philox4x32 d = philox4x32_10(1u, 2u, 3u, 5u, 5u, 6u);
  const Philox4x32 e = philox4x32_10(1u, 2u, 3u, 4u, 5u, 7u);
  for (int i = 0; i < 4; ++i) {
    CHECK(a.v[i] != d.v[i]);
    CHECK(a.v[i] != e.v[i]);
  }
}

TEST_CASE("philox_uniform is in (0, 1]", "[philox]") {
  CHECK(kPhilox2Pow32Inv == std::ldexp(1.0f, -32));
  CHECK(philox_uniform(0u) == std::ldexp(1.0f, -33));
  CHECK(philox_uniform(0u) > 0.0f);
  CHECK(philox_uniform(0xffffffffu) == 1.0f);
  CHECK(philox_uniform(0x80000000u) == Approx(0.5f));
  float prev = 0.0f;
  for (uint64_t x = 0; x <= 0xffffffffull; x += 0x01000193ull) {
    const float u = philox_uniform(static_cast<uint32_t>(x));
    CHECK(u > 0.0f);
    CHECK(u <= 1.0f);
    CHECK(u >= prev);
    prev = u;
  }
}

TEST_CASE("philox_box_muller gives finite standard normals", "[philox]") {
  float a, b;
  philox_box_muller(0u, 0u, a, b);  // smallest radius input: u = 2^-33, largest |z|
  CHECK(std::isfinite(a));
  CHECK(std::isfinite(b));
  CHECK(std::sqrt(a * a + b * b) == Approx(std::sqrt(-2.0 * std::log(std::ldexp(1.0, -33)))).epsilon(1e-5));
  philox_box_muller(0xffffffffu, 0x12345678u, a, b);  // u = 1 -> radius 0
  CHECK(a == 0.0f);
  CHECK(b == 0.0f);
  // one-element form is the same computation
  for (uint32_t i = 0; i < 1000; ++i) {
    const Philox4x32 r = philox4x32_10(i, 7u, 0u, 0u, 11u, 13u);
    philox_box_muller(r.v[0], r.v[1], a, b);
    CHECK(philox_box_muller_one(r.v[0], r.v[1], 0) == a);
    CHECK(philox_box_muller_one(r.v[0], r.v[1], 1) == b);
  }
  // moments over 2e5 samples
  double s1 = 0, s2 = 0, s4 = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const Philox4x32 r = philox4x32_10(static_cast<uint32_t>(i), 1u, 2u, 3u, 4u, 5u);
    philox_box_muller(r.v[0], r.v[1], a, b);
    for (double z : {double(a), double(b)}) {
      s1 += z;
      s2 += z * z;
      s4 += z * z * z * z;
    }
  }
  const double m = s1 / (2 * n), v = s2 / (2 * n) - m * m, k = s4 / (2 * n);
  CHECK(std::fabs(m) < 0.01);
  CHECK(std::fabs(v - 1.0) < 0.01);
  CHECK(std::fabs(k - 3.0) < 0.05);
}

TEST_CASE("AVX-512 Philox gives the known answers and the scalar words", "[philox][simd]") {
  if (!noise_simd_supported()) {
    WARN("this CPU has no AVX-512F: the vector Philox is not checked here");
    return;
  }
  struct Kat {
    uint32_t c[4], k[2], e[4];
  };
  const Kat kats[] = {{{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
                      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                       {0xffffffffu, 0xffffffffu},
                       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
                      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                       {0xa4093822u, 0x299f31d0u},
                       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}};
  for (const Kat& t : kats) {
    uint32_t out[64];
    philox4x32_10_x16(t.c[0], t.c[1], t.c[2], t.c[3], t.k[0], t.k[1], out);
    for (int w = 0; w < 4; w++) CHECK(out[w] == t.e[w]);  // lane 0: the cuRAND words
    for (uint32_t l = 0; l < 16; l++) {                    // lane l: counter word 0 + l (wrapping)
      const Philox4x32 r = philox4x32_10(t.c[0] + l, t.c[1], t.c[2], t.c[3], t.k[0], t.k[1]);
      for (int w = 0; w < 4; w++) CHECK(out[4 * l + w] == r.v[w]);
    }
  }
}

// ---- our own log / sin / cos (core/philox.h, philox_math) ------------------------------------
namespace {
float from_bits(uint32_t u) { return philox_math::bits_float(u); }
uint32_t to_bits(float x) { return philox_math::float_bits(x); }
// |got - exact| in units of the last place of the float nearest to exact.
double ulp_error(float got, long double exact) {
  const long double a = std::fabs(exact);
  if (a == 0) return got == 0.0f ? 0.0 : 1e30;
  int e;
  std::frexp(static_cast<double>(a), &e);  // a in [2^(e-1), 2^e)
  const long double ulp = std::ldexp(1.0L, std::max(e - 24, -149));
  return static_cast<double>(std::fabs(static_cast<long double>(got) - exact) / ulp);
}
struct ErrStats {
  double max_ulp = 0;
  float worst = 0;
  uint64_t n = 0, not_nearest = 0;
  void add(float x, float got, long double exact) {
    const double e = ulp_error(got, exact);
    ++n;
    if (got != static_cast<float>(exact)) ++not_nearest;
    if (e > max_ulp) {
      max_ulp = e;
      worst = x;
    }
  }
};
}  // namespace

TEST_CASE("our log/sin/cos constants are the mathematical values", "[philox][math]") {
  using namespace philox_math;
  const long double half_ulp = std::ldexp(1.0L, -53);  // relative, of a double
  CHECK(std::fabs(static_cast<long double>(kLn2) - std::log(2.0L)) <= half_ulp * std::log(2.0L));
  const long double pi = std::acos(-1.0L);
  CHECK(std::fabs(static_cast<long double>(kTwoOverPi) - 2 / pi) <= half_ulp * (2 / pi));
  CHECK(std::fabs(static_cast<long double>(kPio2Hi) - pi / 2) <= half_ulp * (pi / 2));
  // hi + lo agrees with pi/2 to the precision of long double (64 bits)
  CHECK(std::fabs((static_cast<long double>(kPio2Hi) + kPio2Lo) - pi / 2) <= std::ldexp(1.0L, -63));
  // the significand threshold: sqrt 2 lies between the floats 0x3FB504F3 and 0x3FB504F4
  CHECK(static_cast<long double>(from_bits(0x3F800000u | kSqrt2Mant)) > std::sqrt(2.0L));
  CHECK(static_cast<long double>(from_bits(0x3F800000u | (kSqrt2Mant - 1))) < std::sqrt(2.0L));
  // n! is exact in a double for the factorials the series use, so 1/n! is one rounding
  uint64_t f = 1;
  for (int n = 1; n <= 20; ++n) {
    f *= static_cast<uint64_t>(n);
    CHECK(static_cast<uint64_t>(1.0 / std::fabs(signed_inv_factorial(0, n)) + 0.5) == f);
    CHECK(std::fabs(signed_inv_factorial(0, n)) == 1.0 / static_cast<double>(f));
    CHECK(static_cast<uint64_t>(static_cast<double>(f)) == f);
  }
  CHECK(sin_coef(1) == -1.0 / 6.0);
  CHECK(cos_coef(2) == 1.0 / 24.0);
  CHECK(inv_odd(kLogTerms) == 1.0 / 23.0);
}

TEST_CASE("philox_logf is accurate to half an ulp against long double", "[philox][math]") {
  // every 61st float in [2^-33, 1] (the Box-Muller radius inputs), then every 4099th float up
  // to FLT_MAX and down to the smallest normal
  ErrStats st;
  for (uint32_t b = to_bits(std::ldexp(1.0f, -33)); b <= to_bits(1.0f); b += 61) {
    const float x = from_bits(b);
    st.add(x, philox_logf(x), std::log(static_cast<long double>(x)));
  }
  for (uint32_t b = 0x00800000u; b < 0x7f800000u; b += 4099) {
    const float x = from_bits(b);
    st.add(x, philox_logf(x), std::log(static_cast<long double>(x)));
  }
  for (float x : {1.0f, 2.0f, 0.5f, std::ldexp(1.0f, -33), std::ldexp(1.0f, -126), 3.4028235e38f,
                  from_bits(0x3FB504F3u), from_bits(0x3FB504F4u), from_bits(0x3F3504F3u), from_bits(0x3F3504F4u),
                  from_bits(0x3f7fffffu), from_bits(0x3f800001u)})
    st.add(x, philox_logf(x), std::log(static_cast<long double>(x)));
  CHECK(philox_logf(1.0f) == 0.0f);
  CHECK(philox_logf(2.0f) == static_cast<float>(std::log(2.0L)));
  UNSCOPED_INFO(std::setprecision(9) << "philox_logf: " << st.n << " inputs, max error " << st.max_ulp << " ulp at x = " << st.worst
                                << ", not the nearest float: " << st.not_nearest);
  CHECK(st.n > 1000000);
  CHECK(st.max_ulp < 0.5001);
  CHECK(st.not_nearest * 100000 < st.n);
}

TEST_CASE("philox_sincosf is accurate to half an ulp against long double", "[philox][math]") {
  ErrStats s, c;
  auto one = [&](float x) {
    float sn, cs;
    philox_sincosf(x, sn, cs);
    const long double xl = x;
    s.add(x, sn, std::sin(xl));
    c.add(x, cs, std::cos(xl));
  };
  // every 31st float in (0, 2 pi + a bit] (the Box-Muller angles), every 257th in [-1024, 1024]
  for (uint32_t b = to_bits(std::ldexp(1.0f, -33)); b <= to_bits(6.2831855f); b += 31) one(from_bits(b));
  for (uint32_t b = 1; b <= to_bits(1024.0f); b += 257) {
    one(from_bits(b));
    one(-from_bits(b));
  }
  // the floats nearest to multiples of pi/2 (the largest cancellation in the reduction)
  for (int k = -600; k <= 600; ++k) {
    const float x = static_cast<float>(k * std::acos(-1.0L) / 2);
    for (uint32_t d = 0; d < 5; ++d) {
      one(from_bits(to_bits(x) + d));
      if (to_bits(x) >= d) one(from_bits(to_bits(x) - d));
    }
  }
  UNSCOPED_INFO(std::setprecision(9) << "sin: " << s.n << " inputs, max error " << s.max_ulp << " ulp at x = " << s.worst
                        << ", not the nearest float: " << s.not_nearest);
  UNSCOPED_INFO("cos: max error " << c.max_ulp << " ulp at x = " << c.worst << ", not the nearest float: " << c.not_nearest);
  CHECK(s.n > 1000000);
  CHECK(s.max_ulp < 0.5001);
  CHECK(c.max_ulp < 0.5001);
  CHECK(s.not_nearest * 100000 < s.n);
  CHECK(c.not_nearest * 100000 < c.n);
  float sn, cs;
  philox_sincosf(0.0f, sn, cs);
  CHECK(to_bits(sn) == 0u);
  CHECK(cs == 1.0f);
}

TEST_CASE("philox_box_muller known answers (our log/sin/cos definition)", "[philox][math]") {
  // Pinned output bits of our definition: they change only if the definition changes.
  struct Kat {
    uint32_t x, y, first, second;
  };
  const Kat kats[] = {{0x00000000u, 0x00000000u, 0x31a9fd8fu, 0x40d87047u},  // u = 2^-33: radius 6.7637
      {0xffffffffu, 0x12345678u, 0x80000000u, 0x80000000u},  // u = 1: radius 0 (-0, -0)
      {0x80000000u, 0x40000000u, 0x3f96b55fu, 0xb35d0bb7u},  // angle ~ pi/2
      {0x6627e8d5u, 0xe169c58du, 0xbf6cb6adu, 0x3f7dbb34u},  // the Random123 block of zeros
      {0xbc57ac4cu, 0x9b00dbd8u, 0xbef6d1b7u, 0xbf1e1b9du},
      {0x00000001u, 0xffffffffu, 0x359ade25u, 0x40d32d4cu},  // angle 2 pi
      {0x00001000u, 0xc0000000u, 0xc0a87f18u, 0x3386d784u},  // angle ~ 3 pi/2
      {0xdeadbeefu, 0x01234567u, 0x3c719761u, 0x3f072469u}};
  for (const Kat& k : kats) {
    float a, b;
    philox_box_muller(k.x, k.y, a, b);
    CHECK(to_bits(a) == k.first);
    CHECK(to_bits(b) == k.second);
  }
}
