// Counter-based EGGROLL noise: determinism, key separation, antithetic pairs, sub-ranges,
// noise_reuse, distributions.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "es/noise.h"

using namespace eggroll;

namespace {
std::vector<float> fill(const NoiseKey& k, NoiseDist d, size_t start, size_t count) {
  std::vector<float> v(count);
  fill_noise(k, d, start, count, v.data());
  return v;
}
size_t count_equal(const std::vector<float>& a, const std::vector<float>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] == b[i];
  return n;
}
}  // namespace

TEST_CASE("epoch bucket, pair and sign", "[noise]") {
  CHECK(epoch_bucket(0, 1) == 0);
  CHECK(epoch_bucket(7, 1) == 7);
  CHECK(epoch_bucket(7, 3) == 2);
  CHECK(epoch_bucket(8, 3) == 2);
  CHECK(epoch_bucket(9, 3) == 3);
  CHECK(epoch_bucket(12345, 0) == 0);
  CHECK(member_pair(0) == 0);
  CHECK(member_pair(1) == 0);
  CHECK(member_pair(2) == 1);
  CHECK(member_pair(7) == 3);
  CHECK(member_sign(0) == 1.0f);
  CHECK(member_sign(1) == -1.0f);
  CHECK(member_sign(6) == 1.0f);
  CHECK(member_sign(7) == -1.0f);
}

TEST_CASE("noise elements follow the documented Philox layout", "[noise]") {
  NoiseKey k{0x0123456789abcdefull, 17u, 5u, 9u};
  for (uint64_t j : {0ull, 1ull, 2ull, 3ull, 4ull, 1001ull, 4294967295ull * 4 + 3}) {
    const Philox4x32 b = philox4x32_10(static_cast<uint32_t>(j / 4), 17u, 9u, 5u, 0x89abcdefu,
                                       0x01234567u);
    const uint32_t w = static_cast<uint32_t>(j % 4);
    float first, second;
    philox_box_muller(b.v[w & 2u], b.v[(w & 2u) + 1], first, second);
    CHECK(noise_element(k, NoiseDist::Gaussian, j) == ((w & 1u) ? second : first));
    CHECK(noise_element(k, NoiseDist::Rademacher, j) == ((b.v[w] >> 31) ? -1.0f : 1.0f));
    float one = 0.0f;
    fill_noise(k, NoiseDist::Gaussian, j, 1, &one);
    CHECK(one == noise_element(k, NoiseDist::Gaussian, j));
  }
}

TEST_CASE("Gaussian noise known answers (our log/sin/cos definition)", "[noise]") {
  // Pinned bits of noise_element under core/philox.h's own log/sin/cos: the same on the CPU
  // (scalar and AVX-512) and on CUDA; they change only if the definition changes.
  const NoiseKey k{0x0123456789abcdefull, 17u, 5u, 9u};
  const std::pair<uint64_t, uint32_t> kat[] = {{0ull, 0x3e40da91u},    {1ull, 0xbe8fdd34u},
                                               {2ull, 0x3f16511eu},    {3ull, 0x3e083839u},
                                               {4097ull, 0x3e9b9690u}, {17179869183ull, 0x3f0bbb46u}};
  for (const auto& [j, bits] : kat) {
    const float v = noise_element(k, NoiseDist::Gaussian, j);
    uint32_t u;
    std::memcpy(&u, &v, 4);
    CHECK(u == bits);
    float f = 0.0f;
    fill_noise(k, NoiseDist::Gaussian, j, 1, &f);
    CHECK(f == v);
  }
}

TEST_CASE("noise is deterministic and keyed", "[noise]") {
  const NoiseKey base{42, 3, 1, 5};
  const auto a = fill(base, NoiseDist::Gaussian, 0, 4096);
  CHECK(a == fill(base, NoiseDist::Gaussian, 0, 4096));
  NoiseKey k = base;
  k.seed = 43;
  CHECK(count_equal(a, fill(k, NoiseDist::Gaussian, 0, 4096)) == 0);
  k = base;
  k.seed = base.seed | (uint64_t{1} << 40);  // high seed word matters
  CHECK(count_equal(a, fill(k, NoiseDist::Gaussian, 0, 4096)) == 0);
  k = base;
  k.param_id = 4;
  CHECK(count_equal(a, fill(k, NoiseDist::Gaussian, 0, 4096)) == 0);
  k = base;
  k.epoch_bucket = 2;
  CHECK(count_equal(a, fill(k, NoiseDist::Gaussian, 0, 4096)) == 0);
  k = base;
  k.pair = 6;
  CHECK(count_equal(a, fill(k, NoiseDist::Gaussian, 0, 4096)) == 0);
}

TEST_CASE("sub-range fills equal the full fill", "[noise]") {
  const NoiseKey k{7, 11, 0, 2};
  for (NoiseDist d : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
    const size_t n = 1037;
    const auto full = fill(k, d, 0, n);
    for (size_t start : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{500}}) {
      for (size_t count : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{7},
                           size_t{100}}) {
        if (start + count > n) continue;
        const auto part = fill(k, d, start, count);
        for (size_t i = 0; i < count; ++i) REQUIRE(part[i] == full[start + i]);
      }
    }
    // the factor array is one array: B's range can be filled on its own
    NoiseConfig cfg;
    cfg.seed = 7;
    cfg.rank = 3;
    cfg.dist = d;
    const size_t m = 13, nn = 9;
    const auto f = lowrank_factors(cfg, 11, 4, 5, m, nn);
    REQUIRE(f.size() == (m + nn) * 3);
    const auto b = fill(noise_key(cfg, 11, 4, 5), d, m * 3, nn * 3);
    for (size_t i = 0; i < nn * 3; ++i) REQUIRE(b[i] == f[m * 3 + i]);
  }
}

TEST_CASE("fill_noise range limits", "[noise]") {
  const NoiseKey k{1, 2, 3, 4};
  float x = 0.0f;
  CHECK_NOTHROW(fill_noise(k, NoiseDist::Gaussian, kMaxNoiseElements - 1, 1, &x));
  CHECK_THROWS_AS(fill_noise(k, NoiseDist::Gaussian, kMaxNoiseElements, 1, &x), std::out_of_range);
  CHECK_NOTHROW(fill_noise(k, NoiseDist::Gaussian, kMaxNoiseElements, 0, &x));
}

TEST_CASE("antithetic members share factors, opposite signs", "[noise]") {
  NoiseConfig cfg;
  cfg.seed = 1234;
  cfg.rank = 2;
  cfg.sigma = 0.5f;
  const auto f0 = lowrank_factors(cfg, 3, 10, 0, 8, 6);
  const auto f1 = lowrank_factors(cfg, 3, 10, 1, 8, 6);
  const auto f2 = lowrank_factors(cfg, 3, 10, 2, 8, 6);
  const auto f3 = lowrank_factors(cfg, 3, 10, 3, 8, 6);
  CHECK(f0 == f1);
  CHECK(f2 == f3);
  CHECK(count_equal(f0, f2) == 0);
  CHECK(lowrank_scale(cfg, 0) == Approx(0.5 / std::sqrt(2.0)));
  CHECK(lowrank_scale(cfg, 1) == Approx(-0.5 / std::sqrt(2.0)));
  CHECK(vector_scale(cfg, 2) == 0.5f);
  CHECK(vector_scale(cfg, 3) == -0.5f);
  std::vector<float> v0(100), v1(100), v2(100);
  fill_vector_noise(cfg, 9, 10, 4, 100, v0.data());
  fill_vector_noise(cfg, 9, 10, 5, 100, v1.data());
  fill_vector_noise(cfg, 9, 10, 6, 100, v2.data());
  CHECK(v0 == v1);
  CHECK(count_equal(v0, v2) == 0);
  // A different parameter id gives different factors for the same member.
  CHECK(count_equal(f0, lowrank_factors(cfg, 4, 10, 0, 8, 6)) == 0);
  // A vector's noise is the same scheme as a factor array of the same length.
  std::vector<float> w(100);
  fill_noise(noise_key(cfg, 9, 10, 4), cfg.dist, 0, 100, w.data());
  CHECK(w == v0);
}

TEST_CASE("noise_reuse semantics", "[noise]") {
  NoiseConfig cfg;
  cfg.seed = 99;
  cfg.noise_reuse = 1;  // fresh noise every epoch
  CHECK(count_equal(lowrank_factors(cfg, 0, 0, 0, 4, 4), lowrank_factors(cfg, 0, 1, 0, 4, 4)) == 0);
  cfg.noise_reuse = 3;  // epochs 0-2 share, 3-5 share
  CHECK(lowrank_factors(cfg, 0, 0, 0, 4, 4) == lowrank_factors(cfg, 0, 2, 0, 4, 4));
  CHECK(lowrank_factors(cfg, 0, 3, 0, 4, 4) == lowrank_factors(cfg, 0, 5, 0, 4, 4));
  CHECK(count_equal(lowrank_factors(cfg, 0, 2, 0, 4, 4), lowrank_factors(cfg, 0, 3, 0, 4, 4)) == 0);
  cfg.noise_reuse = 0;  // same noise forever
  CHECK(lowrank_factors(cfg, 0, 0, 0, 4, 4) == lowrank_factors(cfg, 0, 1000000, 0, 4, 4));
  CHECK(noise_key(cfg, 5, 777, 9).epoch_bucket == 0);
  CHECK(noise_key(cfg, 5, 777, 9).pair == 4);
  CHECK(noise_key(cfg, 5, 777, 9).param_id == 5);
  CHECK(noise_key(cfg, 5, 777, 9).seed == 99);
}

TEST_CASE("config validation", "[noise]") {
  NoiseConfig cfg;
  CHECK_NOTHROW(validate_noise_config(cfg));
  cfg.rank = 0;
  CHECK_THROWS_WITH(validate_noise_config(cfg), Catch::StartsWith("noise.rank:"));
  cfg = NoiseConfig{};
  cfg.noise_reuse = -1;
  CHECK_THROWS_WITH(validate_noise_config(cfg), Catch::StartsWith("noise.noise_reuse:"));
  cfg = NoiseConfig{};
  cfg.sigma = NAN;
  CHECK_THROWS_AS(validate_noise_config(cfg), InputError);
  cfg.sigma = -1.0f;
  CHECK_THROWS_WITH(validate_noise_config(cfg), Catch::StartsWith("noise.sigma:"));
  CHECK(parse_noise_dist("gaussian") == NoiseDist::Gaussian);
  CHECK(parse_noise_dist("normal") == NoiseDist::Gaussian);
  CHECK(parse_noise_dist("rademacher") == NoiseDist::Rademacher);
  CHECK_THROWS_WITH(parse_noise_dist("uniform", "es.noise"), Catch::StartsWith("es.noise:"));
  CHECK(std::string(noise_dist_name(NoiseDist::Rademacher)) == "rademacher");
}

TEST_CASE("Gaussian moments over 1e6 samples", "[noise]") {
  const size_t n = 1000000;
  const auto v = fill(NoiseKey{2024, 1, 0, 0}, NoiseDist::Gaussian, 0, n);
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  size_t beyond3 = 0;
  for (float x : v) {
    REQUIRE(std::isfinite(x));
    const double d = x;
    s1 += d;
    s2 += d * d;
    s3 += d * d * d;
    s4 += d * d * d * d;
    beyond3 += std::fabs(d) > 3.0;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  CHECK(std::fabs(mean) < 0.005);  // sd of the mean is 0.001
  CHECK(std::fabs(var - 1.0) < 0.005);
  CHECK(std::fabs(s3 / n) < 0.02);
  CHECK(std::fabs(s4 / n - 3.0) < 0.03);
  CHECK(beyond3 > 2300);  // expected 2700 (P(|z| > 3) = 0.0027)
  CHECK(beyond3 < 3100);
  // Neighbouring elements (a Box-Muller pair, and the pairs of a block) are uncorrelated.
  double c01 = 0, c12 = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    c01 += double(v[i]) * v[i + 1];
    c12 += double(v[i + 1]) * v[i + 2];
  }
  CHECK(std::fabs(c01 / (n / 4)) < 0.01);
  CHECK(std::fabs(c12 / (n / 4)) < 0.01);
}

TEST_CASE("Rademacher values", "[noise]") {
  const size_t n = 1000000;
  const auto v = fill(NoiseKey{5, 6, 7, 8}, NoiseDist::Rademacher, 0, n);
  size_t plus = 0;
  for (float x : v) {
    REQUIRE((x == 1.0f || x == -1.0f));
    plus += x == 1.0f;
  }
  CHECK(std::fabs(double(plus) / n - 0.5) < 0.003);
}

// The AVX-512 noise (core/noise_simd.cpp) against the scalar definition, bit for bit.
namespace {
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
}  // namespace

TEST_CASE("AVX-512 noise equals the scalar noise bit for bit", "[noise][simd]") {
  // fill_noise (the dispatcher) always equals the scalar loop, with or without AVX-512.
  const NoiseKey k0{42, 3, 1, 7};
  for (NoiseDist d : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
    std::vector<float> a(1000), b(1000);
    fill_noise(k0, d, 3, a.size(), a.data());
    fill_noise_scalar(k0, d, 3, b.size(), b.data());
    CHECK(same_bits(a, b));
  }
  if (!noise_simd_supported()) {
    WARN("this CPU has no AVX-512F: the vector noise is not checked here");
    return;
  }
  CHECK_THROWS_AS(fill_noise_simd(k0, NoiseDist::Gaussian, kMaxNoiseElements - 1, 2, nullptr), std::out_of_range);
  const NoiseKey keys[] = {{0, 0, 0, 0},
                           {0x0123456789abcdefull, 17, 5, 9},
                           {~0ull, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                           {12345, 2, 0, 511},
                           {0xdeadbeefcafef00dull, 1000, 77, 3}};
  const size_t starts[] = {0, 1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 1001};
  const size_t counts[] = {0, 1, 2, 3, 4, 15, 16, 17, 31, 63, 64, 65, 127, 200, 1000, 4099};
  size_t checked = 0;
  for (const NoiseKey& k : keys)
    for (NoiseDist d : {NoiseDist::Gaussian, NoiseDist::Rademacher})
      for (size_t s : starts)
        for (size_t c : counts) {
          std::vector<float> v(c), r(c);
          fill_noise_simd(k, d, s, c, v.data());
          fill_noise_scalar(k, d, s, c, r.data());
          INFO("seed " << k.seed << " dist " << noise_dist_name(d) << " start " << s << " count " << c);
          REQUIRE(same_bits(v, r));
          for (size_t i = 0; i < c; i += 97) REQUIRE(v[i] == noise_element(k, d, s + i));
          checked += c;
        }
  CHECK(checked > 500000);
  // The last blocks of the 2^34-element range (the lanes past the end wrap and are dropped).
  for (size_t c : {size_t(1), size_t(13), size_t(64), size_t(100)}) {
    std::vector<float> v(c), r(c);
    fill_noise_simd(keys[1], NoiseDist::Gaussian, kMaxNoiseElements - c, c, v.data());
    fill_noise_scalar(keys[1], NoiseDist::Gaussian, kMaxNoiseElements - c, c, r.data());
    CHECK(same_bits(v, r));
  }
  // A long array (the cache of one 0.1b matrix-sized factor array) in one call.
  std::vector<float> v(3 * 1024 * 1024 + 7), r(v.size());
  fill_noise_simd(keys[4], NoiseDist::Gaussian, 5, v.size(), v.data());
  fill_noise_scalar(keys[4], NoiseDist::Gaussian, 5, r.size(), r.data());
  CHECK(same_bits(v, r));
}

TEST_CASE("AVX-512 Box-Muller equals the scalar transform on a sweep of words", "[noise][simd]") {
  if (!noise_simd_supported()) {
    WARN("this CPU has no AVX-512F: the vector Box-Muller is not checked here");
    return;
  }
  // Radius words and angle words over the whole 32-bit range (every 4099th value, and the ends),
  // so every quadrant boundary of the angle and both halves of the log's [sqrt(1/2), sqrt(2))
  // reduction are crossed; n not a multiple of 16.
  std::vector<uint32_t> x, y;
  for (uint64_t w = 0; w <= 0xffffffffull; w += 4099) {
    x.push_back(uint32_t(w * 2654435761ull));
    y.push_back(uint32_t(w));
  }
  for (uint32_t w : {0u, 1u, 2u, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu}) {
    x.push_back(w);
    y.push_back(w);
    x.push_back(0x12345678u);
    y.push_back(w);
    x.push_back(w);
    y.push_back(0x9abcdef0u);
  }
  REQUIRE(x.size() % 16 != 0);
  std::vector<float> f(x.size()), s(x.size());
  box_muller_simd(x.data(), y.data(), x.size(), f.data(), s.data());
  size_t bad = 0;
  for (size_t i = 0; i < x.size(); i++) {
    float a, b;
    philox_box_muller(x[i], y[i], a, b);
    bad += std::memcmp(&a, &f[i], 4) != 0 || std::memcmp(&b, &s[i], 4) != 0;
  }
  CHECK(x.size() > 1000000);
  CHECK(bad == 0);
}
