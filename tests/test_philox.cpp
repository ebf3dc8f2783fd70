// Philox4x32-10: known answers (the Random123 / cuRAND test vectors; docs/architecture.md, "Noise") and the
// float helpers.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>

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
