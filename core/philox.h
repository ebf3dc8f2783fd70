#pragma once
// Philox4x32-10 counter-based random number generator (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC'11), header-only, usable from host code and CUDA device code.
//
// The raw block function is bit-identical to cuRAND's Philox4_32_10 for the same key and
// counter: curand_init(seed, subsequence, offset) sets key = (seed low 32, seed high 32),
// counter = (offset-block low, offset-block high, subsequence low, subsequence high).
// The helpers below that turn words into floats follow cuRAND's formulas as well
// (curand_uniform: (0, 1]; Box-Muller: sin/cos pair), but the transcendental functions
// (logf, sinf, cosf) of the host libm and of CUDA may differ in the last ulp, so Gaussian
// values agree between backends to ~1e-6 relative, not bit for bit. Raw words always match.
#include <math.h>

#include <cmath>
#include <cstdint>

#ifndef EGGROLL_HD
#if defined(__CUDACC__)
#define EGGROLL_HD __host__ __device__ __forceinline__
#else
#define EGGROLL_HD inline
#endif
#endif

namespace eggroll {

struct Philox4x32 {
  uint32_t v[4];
};
struct PhiloxKey {
  uint32_t k[2];
};

namespace philox_detail {
constexpr uint32_t kMul0 = 0xD2511F53u;   // PHILOX_M4x32_0
constexpr uint32_t kMul1 = 0xCD9E8D57u;   // PHILOX_M4x32_1
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // PHILOX_W32_0 (golden ratio)
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // PHILOX_W32_1 (sqrt(3) - 1)

EGGROLL_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  lo = a * b;
  hi = __umulhi(a, b);
#else
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  lo = static_cast<uint32_t>(p);
  hi = static_cast<uint32_t>(p >> 32);
#endif
}

EGGROLL_HD Philox4x32 philox_round(Philox4x32 c, PhiloxKey k) {
  uint32_t hi0, lo0, hi1, lo1;
  mulhilo(kMul0, c.v[0], hi0, lo0);
  mulhilo(kMul1, c.v[2], hi1, lo1);
  Philox4x32 r;
  r.v[0] = hi1 ^ c.v[1] ^ k.k[0];
  r.v[1] = lo1;
  r.v[2] = hi0 ^ c.v[3] ^ k.k[1];
  r.v[3] = lo0;
  return r;
}
}  // namespace philox_detail

// Philox4x32 with 10 rounds: the 128-bit output block for one 128-bit counter and 64-bit key.
EGGROLL_HD Philox4x32 philox4x32_10(Philox4x32 counter, PhiloxKey key) {
  for (int i = 0; i < 9; ++i) {
    counter = philox_detail::philox_round(counter, key);
    key.k[0] += philox_detail::kWeyl0;
    key.k[1] += philox_detail::kWeyl1;
  }
  return philox_detail::philox_round(counter, key);
}

EGGROLL_HD Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                    uint32_t k0, uint32_t k1) {
  Philox4x32 c;
  c.v[0] = c0;
  c.v[1] = c1;
  c.v[2] = c2;
  c.v[3] = c3;
  PhiloxKey k;
  k.k[0] = k0;
  k.k[1] = k1;
  return philox4x32_10(c, k);
}

// 2^-32, and 2*pi*2^-32, as cuRAND defines them (CURAND_2POW32_INV, CURAND_2POW32_INV_2PI).
constexpr float kPhilox2Pow32Inv = 2.3283064e-10f;
constexpr float kPhilox2Pow32Inv2Pi = 2.3283064e-10f * 6.2831855f;

// uint32 -> float uniform in (0, 1] (cuRAND's curand_uniform: x * 2^-32 + 2^-33; never 0, so
// log() of it is always finite; the largest inputs round to exactly 1.0f).
EGGROLL_HD float philox_uniform(uint32_t x) {
  return static_cast<float>(x) * kPhilox2Pow32Inv + (kPhilox2Pow32Inv / 2.0f);
}

// Box-Muller transform of two words into two independent N(0,1) floats, as cuRAND's
// curand_normal2: radius from x, angle from y; first = r*sin(angle), second = r*cos(angle).
EGGROLL_HD void philox_box_muller(uint32_t x, uint32_t y, float& first, float& second) {
  const float u = philox_uniform(x);
  const float v = static_cast<float>(y) * kPhilox2Pow32Inv2Pi + (kPhilox2Pow32Inv2Pi / 2.0f);
  const float s = sqrtf(-2.0f * logf(u));
  first = s * sinf(v);
  second = s * cosf(v);
}

// One of the two Box-Muller outputs: which == 0 -> r*sin, which == 1 -> r*cos. Computes the
// pair exactly as philox_box_muller does (same expression), so a single element always equals
// the corresponding element of a whole pair.
EGGROLL_HD float philox_box_muller_one(uint32_t x, uint32_t y, int which) {
  float first, second;
  philox_box_muller(x, y, first, second);
  return which == 0 ? first : second;
}

}  // namespace eggroll
