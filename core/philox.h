#pragma once
// Philox4x32-10 counter-based random number generator (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC'11), header-only, usable from host code and CUDA device code.
//
// The raw block function is bit-identical to cuRAND's Philox4_32_10 for the same key and
// counter: curand_init(seed, subsequence, offset) sets key = (seed low 32, seed high 32),
// counter = (offset-block low, offset-block high, subsequence low, subsequence high).
// The helpers below that turn words into floats follow cuRAND's formulas (curand_uniform:
// (0, 1]; Box-Muller: sin/cos pair), but with our own log and sin/cos (philox_logf,
// philox_sincosf: a fixed sequence of double operations defined below, not the libm's), so the
// Gaussian values are the same bits on the host, in the AVX-512 code of core/noise_simd.cpp and
// in CUDA device code. Raw words match cuRAND's; Gaussian values differ from curand_normal2's in
// the last ulps (cuRAND uses CUDA's logf/sinf/cosf).
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
// One fused multiply-add (one rounding), on the host and on the device.
EGGROLL_HD float philox_uniform(uint32_t x) {
  return fmaf(static_cast<float>(x), kPhilox2Pow32Inv, kPhilox2Pow32Inv / 2.0f);
}
// uint32 -> Box-Muller angle in (0, 2 pi], one fused multiply-add.
EGGROLL_HD float philox_angle(uint32_t y) {
  return fmaf(static_cast<float>(y), kPhilox2Pow32Inv2Pi, kPhilox2Pow32Inv2Pi / 2.0f);
}

// ---- log, sin and cos of the Box-Muller transform: our own definition ------------------------
// philox_logf and philox_sincosf below are defined by the following sequence of IEEE-754 double
// operations, each rounded once to nearest (fused multiply-adds are one operation); the result
// is rounded to float at the end. The constants are mathematical facts: the series coefficients
// 1/(2i+1) and (-1)^i/n! are one correctly rounded division each (n! is exact in a double for
// n <= 22), and ln 2, 2/pi and pi/2 = kPio2Hi + kPio2Lo are the correctly rounded doubles of
// ln 2 = 2 atanh(1/3) and of pi = 16 atan(1/5) - 4 atan(1/239) (Machin), evaluated in exact
// rational arithmetic (tests/test_philox.cpp checks them against long double).
//
//   log x, x a positive normal float: x = 2^k m with m in [sqrt(1/2), sqrt(2)) (m exact in a
//     float: the exponent field is 126 when x's significand is >= sqrt 2, else 127);
//     f = (m - 1) / (m + 1) (|f| <= 0.1716, m - 1 and m + 1 exact), w = f * f,
//     p = Horner in w of 1/3, 1/5, ..., 1/23 (p = 1/23; p = fma(p, w, 1/21); ... fma(p, w, 1/3)),
//     atanh f = fma(f * w, p, f)       (the series f + f^3/3 + f^5/5 + ..., remainder < 1e-19),
//     log x = float(fma(k, ln2, atanh f + atanh f))       (log m = 2 atanh f).
//   sin x, cos x: q = rint(x * (2/pi)), r = fma(-q, kPio2Lo, fma(-q, kPio2Hi, x)) (|r| <= pi/4
//     plus a rounding), w = r * r,
//     sin r = fma(r * w, ps, r), ps = Horner in w of -1/3!, 1/5!, ..., -1/19!,
//     cos r = fma(w, pc, 1),     pc = Horner in w of -1/2!, 1/4!, ..., 1/20!
//     (Taylor series; the first omitted terms are < 1e-19 relative at |r| = pi/4), each rounded
//     to float; then by the quadrant n = q mod 4: sin x = (s, c, -s, -c)[n], cos x = (c, -s, -c, s)[n].
// Measured against long double, once over every float of the Box-Muller ranges: log on all
// 276,824,065 floats of [2^-33, 1] is the correctly rounded float except at x = 0x1.827a74p-7
// (its log lies 6e-17 relative from a rounding midpoint: error 0.50000000000006 ulp); sin and
// cos on all 298,389,468 floats of [2^-33, 2 pi] are correctly rounded. tests/test_philox.cpp
// repeats strided sweeps (log also up to FLT_MAX, sin/cos on |x| <= 1024): error < 0.5001 ulp.
// The same definition runs on the host (here), in 16 AVX-512 lanes (core/noise_simd.cpp, the
// same operations on double lanes) and in CUDA device code (this header, with the _rn
// intrinsics, so nvcc contracts nothing), so Gaussian noise is bit-identical on all three. On
// the host no plain product feeds a plain sum, so -ffp-contract cannot fuse anything either.
namespace philox_math {
inline constexpr double kLn2 = 0x1.62e42fefa39efp-1;          // ln 2, correctly rounded
inline constexpr double kTwoOverPi = 0x1.45f306dc9c883p-1;    // 2/pi, correctly rounded
inline constexpr double kPio2Hi = 0x1.921fb54442d18p+0;       // pi/2, correctly rounded
inline constexpr double kPio2Lo = 0x1.1a62633145c07p-54;      // pi/2 - kPio2Hi, correctly rounded
// Significand field of the smallest float above sqrt 2 (0x3FB504F4 = 1.41421365...; 0x3FB504F3
// = 1.41421353... is below it).
inline constexpr uint32_t kSqrt2Mant = 0x3504F4u;
inline constexpr int kLogTerms = 11;  // 1/3 ... 1/23
inline constexpr int kSinTerms = 9;   // 1/3! ... 1/19!
inline constexpr int kCosTerms = 10;  // 1/2! ... 1/20!

// 1/(2i+1), and (-1)^i / n!.
EGGROLL_HD constexpr double inv_odd(int i) { return 1.0 / static_cast<double>(2 * i + 1); }
EGGROLL_HD constexpr double signed_inv_factorial(int i, int n) {
  double f = 1.0;
  for (int j = 2; j <= n; ++j) f *= static_cast<double>(j);  // exact for n <= 22
  return (i & 1) ? -1.0 / f : 1.0 / f;
}
EGGROLL_HD constexpr double sin_coef(int i) { return signed_inv_factorial(i, 2 * i + 1); }  // (-1)^i/(2i+1)!
EGGROLL_HD constexpr double cos_coef(int i) { return signed_inv_factorial(i, 2 * i); }      // (-1)^i/(2i)!

// One IEEE operation each, rounded to nearest; on the device the _rn intrinsics (never fused).
EGGROLL_HD double d_add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
EGGROLL_HD double d_sub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
EGGROLL_HD double d_mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
EGGROLL_HD double d_div(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
EGGROLL_HD double d_fma(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
EGGROLL_HD double d_rint(double a) {  // nearest integer, ties to even
#if defined(__CUDA_ARCH__)
  return rint(a);
#else
  return std::rint(a);
#endif
}
EGGROLL_HD float to_float(double a) {
#if defined(__CUDA_ARCH__)
  return __double2float_rn(a);
#else
  return static_cast<float>(a);
#endif
}
EGGROLL_HD float f_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
EGGROLL_HD float f_sqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
EGGROLL_HD uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  __builtin_memcpy(&u, &x, 4);
  return u;
#endif
}
EGGROLL_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  __builtin_memcpy(&x, &u, 4);
  return x;
#endif
}

// The coefficient of w^(i-1) in the Horner polynomials below (w = the squared argument).
enum class Series { Atanh, Sin, Cos };
EGGROLL_HD constexpr double series_coef(Series s, int i) {
  return s == Series::Atanh ? inv_odd(i) : s == Series::Sin ? sin_coef(i) : cos_coef(i);
}
// p = fma(p, w, c_I); p = fma(p, w, c_(I-1)); ... fma(p, w, c_1), every c_i a compile-time constant.
template <Series S, int I>
EGGROLL_HD double horner(double p, double w) {
  if constexpr (I < 1) {
    (void)w;
    return p;
  } else {
    constexpr double c = series_coef(S, I);
    return horner<S, I - 1>(d_fma(p, w, c), w);
  }
}
template <Series S, int N>
EGGROLL_HD double series_poly(double w) {
  constexpr double top = series_coef(S, N);
  return horner<S, N - 1>(top, w);
}

// atanh f = f + f^3/3 + f^5/5 + ... (|f| <= 0.1716).
EGGROLL_HD double atanh_series(double f) {
  const double w = d_mul(f, f);
  return d_fma(d_mul(f, w), series_poly<Series::Atanh, kLogTerms>(w), f);
}
// sin r and cos r for |r| <= pi/4 (w = r * r).
EGGROLL_HD double sin_series(double r, double w) {
  return d_fma(d_mul(r, w), series_poly<Series::Sin, kSinTerms>(w), r);
}
EGGROLL_HD double cos_series(double w) { return d_fma(w, series_poly<Series::Cos, kCosTerms>(w), 1.0); }
}  // namespace philox_math

// Natural log of a positive normal float (the Box-Muller radius input philox_uniform is in
// [2^-33, 1]); zero, subnormal, negative, inf and NaN inputs are outside the definition.
EGGROLL_HD float philox_logf(float x) {
  using namespace philox_math;
  const uint32_t ix = float_bits(x);
  const uint32_t mant = ix & 0x7fffffu;
  const uint32_t up = mant >= kSqrt2Mant ? 1u : 0u;
  const int32_t k = static_cast<int32_t>(ix >> 23) - 127 + static_cast<int32_t>(up);
  const double m = static_cast<double>(bits_float(mant | ((127u - up) << 23)));
  const double a = atanh_series(d_div(d_sub(m, 1.0), d_add(m, 1.0)));
  return to_float(d_fma(static_cast<double>(k), kLn2, d_add(a, a)));
}

// sin and cos of a finite float (the Box-Muller angle philox_angle is in (0, 2 pi]); accurate
// as stated above for |x| <= 1024.
EGGROLL_HD void philox_sincosf(float x, float& sin_out, float& cos_out) {
  using namespace philox_math;
  const double xd = static_cast<double>(x);
  const double q = d_rint(d_mul(xd, kTwoOverPi));
  const double r = d_fma(-q, kPio2Lo, d_fma(-q, kPio2Hi, xd));
  const double w = d_mul(r, r);
  const float s = to_float(sin_series(r, w)), c = to_float(cos_series(w));
  const uint32_t n = static_cast<uint32_t>(static_cast<int32_t>(q));  // quadrant: n & 3
  const float ps = (n & 1u) ? c : s, pc = (n & 1u) ? s : c;
  sin_out = (n & 2u) ? -ps : ps;
  cos_out = ((n + 1u) & 2u) ? -pc : pc;
}

// Box-Muller transform of two words into two independent N(0,1) floats, as cuRAND's
// curand_normal2: radius from x, angle from y; first = r*sin(angle), second = r*cos(angle),
// with our own log and sin/cos (above): the same bits on the host, in AVX-512 and on the device.
EGGROLL_HD void philox_box_muller(uint32_t x, uint32_t y, float& first, float& second) {
  using namespace philox_math;
  const float u = philox_uniform(x);
  const float v = philox_angle(y);
  const float s = f_sqrt(f_mul(-2.0f, philox_logf(u)));
  float sn, cs;
  philox_sincosf(v, sn, cs);
  first = f_mul(s, sn);
  second = f_mul(s, cs);
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
