// AVX-512F noise: Philox4x32-10 for 16 consecutive blocks per vector and the Box-Muller transform
// (log, sqrt, sin/cos) for 16 lanes, computing the same bits as the scalar definition of
// core/philox.h / core/noise.h for every element (every operation is the same IEEE operation
// with the same rounding, in the same order; our double-precision log and sin/cos,
// philox_logf/philox_sincosf, run 8 double lanes at a time, several such vectors' polynomial
// chains side by side). Compiled with a target attribute, so a build without -march=native still
// has it; fill_noise picks it at run time when the CPU has AVX-512F (noise_simd_active).
#include "core/avx512.h"  // first: its pragmas must precede <immintrin.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "core/noise.h"

namespace eggroll {
namespace {

// The ten round keys of Philox4x32-10 for key (k0, k1): k[i] = key + i * Weyl (mod 2^32). Made
// once per fill, read by the rounds as broadcast memory operands.
struct RoundKeys {
  uint32_t k[10][2];
  RoundKeys(uint32_t k0, uint32_t k1) {
    for (auto& r : k) {
      r[0] = k0;
      r[1] = k1;
      k0 += philox_detail::kWeyl0;
      k1 += philox_detail::kWeyl1;
    }
  }
};

// hi and lo words of the 16 products m * a (m the same in every lane), from two 32x32->64-bit
// multiplies: `even` holds the products of lanes 2i as (lo, hi) in lanes (2i, 2i+1), `odd` those
// of lanes 2i+1; a lane swap within each pair puts every word in its place.
EGGROLL_AVX512 inline void mulhilo16(__m512i m, __m512i a, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_shuffle_epi32(a, _MM_PERM_CDAB), m);
  hi = _mm512_mask_shuffle_epi32(odd, __mmask16(0x5555), even, _MM_PERM_CDAB);
  lo = _mm512_mask_shuffle_epi32(even, __mmask16(0xAAAA), odd, _MM_PERM_CDAB);
}
EGGROLL_AVX512 inline __m512i xor3(__m512i a, __m512i b, uint32_t c) {
  return _mm512_ternarylogic_epi32(a, b, _mm512_set1_epi32(int(c)), 0x96);
}

// Philox4x32-10 of the 16 counters (c0 + l, c1, c2, c3), l = 0..15; w[i] = word i of each block.
// Words 1-3 of the counter are the same in every lane, so round 0 multiplies word 2 and round 1
// word 0 as scalars (exactly philox_detail::philox_round's arithmetic); from round 2 on every word varies.
EGGROLL_AVX512 inline void philox16(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, const RoundKeys& rk,
                                    __m512i w[4]) {
  using namespace philox_detail;
  const __m512i m0 = _mm512_set1_epi32(int(kMul0)), m1 = _mm512_set1_epi32(int(kMul1));
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i hi0, lo0, hi1, lo1;
  uint32_t shi, slo;
  // round 0: word 0 varies, words 1-3 are uniform
  mulhilo16(m0, _mm512_add_epi32(_mm512_set1_epi32(int(c0)), lanes), hi0, lo0);
  mulhilo(kMul1, c2, shi, slo);
  const uint32_t u0 = shi ^ c1 ^ rk.k[0][0];  // word 0 after round 0: uniform
  const uint32_t u1 = slo;                    // word 1: uniform
  __m512i x2 = xor3(hi0, _mm512_set1_epi32(int(c3)), rk.k[0][1]);
  __m512i x3 = lo0;
  // round 1: words 0 and 1 are uniform
  mulhilo(kMul0, u0, shi, slo);
  mulhilo16(m1, x2, hi1, lo1);
  __m512i x0 = xor3(hi1, _mm512_set1_epi32(int(u1)), rk.k[1][0]);
  __m512i x1 = lo1;
  x2 = xor3(_mm512_set1_epi32(int(shi)), x3, rk.k[1][1]);
  x3 = _mm512_set1_epi32(int(slo));
  for (int i = 2; i < 10; i++) {
    mulhilo16(m0, x0, hi0, lo0);
    mulhilo16(m1, x2, hi1, lo1);
    x0 = xor3(hi1, x1, rk.k[i][0]);
    x1 = lo1;
    x2 = xor3(hi0, x3, rk.k[i][1]);
    x3 = lo0;
  }
  w[0] = x0;
  w[1] = x1;
  w[2] = x2;
  w[3] = x3;
}

// The Horner coefficients of core/philox.h (series_coef), as compile-time arrays.
template <philox_math::Series S, int N>
struct Coefs {
  static constexpr std::array<double, N + 1> v = [] {
    std::array<double, N + 1> a{};
    for (int i = 1; i <= N; ++i) a[size_t(i)] = philox_math::series_coef(S, i);
    return a;
  }();
};
EGGROLL_AVX512 inline __m256 lo_half(__m512 x) { return _mm512_castps512_ps256(x); }
EGGROLL_AVX512 inline __m256 hi_half(__m512 x) {
  return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
}
EGGROLL_AVX512 inline __m256i lo_half(__m512i x) { return _mm512_castsi512_si256(x); }
EGGROLL_AVX512 inline __m256i hi_half(__m512i x) { return _mm512_extracti64x4_epi64(x, 1); }
EGGROLL_AVX512 inline __m512 join(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
}
EGGROLL_AVX512 inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// series_poly (core/philox.h) of G vectors of 8 double lanes: the same fma chain in each lane,
// the G chains in lockstep (independent work side by side for the out-of-order core).
template <philox_math::Series S, int N, int G>
EGGROLL_AVX512 inline void series_polys(const __m512d (&w)[G], __m512d (&p)[G]) {
  for (int g = 0; g < G; g++) p[g] = _mm512_set1_pd(Coefs<S, N>::v[N]);
#pragma GCC unroll 16
  for (int i = N - 1; i >= 1; --i) {
    const __m512d c = _mm512_set1_pd(Coefs<S, N>::v[size_t(i)]);
    for (int g = 0; g < G; g++) p[g] = _mm512_fmadd_pd(p[g], w[g], c);
  }
}

// The 8-lane halves of G/2 float vectors, widened to double: h[2 i] the low half of x[i], h[2 i + 1] the high.
template <int G>
EGGROLL_AVX512 inline void widen_halves(const __m512 (&x)[G / 2], __m512d (&h)[G]) {
  for (int i = 0; i < G / 2; i++) {
    h[2 * i] = _mm512_cvtps_pd(lo_half(x[i]));
    h[2 * i + 1] = _mm512_cvtps_pd(hi_half(x[i]));
  }
}
// The inverse: G double vectors rounded to float, two per float vector.
template <int G>
EGGROLL_AVX512 inline void narrow_halves(const __m512d (&h)[G], __m512 (&x)[G / 2]) {
  for (int i = 0; i < G / 2; i++) x[i] = join(_mm512_cvtpd_ps(h[2 * i]), _mm512_cvtpd_ps(h[2 * i + 1]));
}

// philox_logf of G/2 vectors of 16 lanes.
template <int G>
EGGROLL_AVX512 inline void log_lanes(const __m512 (&x)[G / 2], __m512 (&out)[G / 2]) {
  using namespace philox_math;
  __m512 mf[G / 2];
  __m512d kd[G];
  for (int i = 0; i < G / 2; i++) {
    const __m512i ix = _mm512_castps_si512(x[i]);
    const __m512i mant = _mm512_and_si512(ix, _mm512_set1_epi32(0x7fffff));
    const __mmask16 up = _mm512_cmpge_epu32_mask(mant, _mm512_set1_epi32(int(kSqrt2Mant)));
    const __m512i k0 = _mm512_sub_epi32(_mm512_srli_epi32(ix, 23), _mm512_set1_epi32(127));
    const __m512i k = _mm512_mask_add_epi32(k0, up, k0, _mm512_set1_epi32(1));
    const __m512i e = _mm512_mask_blend_epi32(up, _mm512_set1_epi32(127 << 23), _mm512_set1_epi32(126 << 23));
    mf[i] = _mm512_castsi512_ps(_mm512_or_si512(mant, e));
    kd[2 * i] = _mm512_cvtepi32_pd(lo_half(k));
    kd[2 * i + 1] = _mm512_cvtepi32_pd(hi_half(k));
  }
  const __m512d one = _mm512_set1_pd(1.0);
  __m512d m[G], f[G], w[G], p[G], r[G];
  widen_halves<G>(mf, m);
  for (int g = 0; g < G; g++) f[g] = _mm512_div_pd(_mm512_sub_pd(m[g], one), _mm512_add_pd(m[g], one));
  for (int g = 0; g < G; g++) w[g] = _mm512_mul_pd(f[g], f[g]);
  series_polys<Series::Atanh, kLogTerms, G>(w, p);  // atanh_series
  for (int g = 0; g < G; g++) {
    const __m512d a = _mm512_fmadd_pd(_mm512_mul_pd(f[g], w[g]), p[g], f[g]);
    r[g] = _mm512_fmadd_pd(kd[g], _mm512_set1_pd(kLn2), _mm512_add_pd(a, a));
  }
  narrow_halves<G>(r, out);
}

// philox_sincosf of G/2 vectors of 16 lanes.
template <int G>
EGGROLL_AVX512 inline void sincos_lanes(const __m512 (&v)[G / 2], __m512 (&sin_out)[G / 2], __m512 (&cos_out)[G / 2]) {
  using namespace philox_math;
  __m512d x[G], qd[G], r[G], w[G], ps[G], pc[G];
  widen_halves<G>(v, x);
  for (int g = 0; g < G; g++)
    qd[g] = _mm512_roundscale_pd(_mm512_mul_pd(x[g], _mm512_set1_pd(kTwoOverPi)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // fma(-q, c, x) == fnmadd(q, c, x): one rounding of x - q c either way
  for (int g = 0; g < G; g++)
    r[g] = _mm512_fnmadd_pd(qd[g], _mm512_set1_pd(kPio2Lo), _mm512_fnmadd_pd(qd[g], _mm512_set1_pd(kPio2Hi), x[g]));
  for (int g = 0; g < G; g++) w[g] = _mm512_mul_pd(r[g], r[g]);
  series_polys<Series::Sin, kSinTerms, G>(w, ps);
  series_polys<Series::Cos, kCosTerms, G>(w, pc);
  for (int g = 0; g < G; g++) {
    ps[g] = _mm512_fmadd_pd(_mm512_mul_pd(r[g], w[g]), ps[g], r[g]);      // sin_series
    pc[g] = _mm512_fmadd_pd(w[g], pc[g], _mm512_set1_pd(1.0));            // cos_series
  }
  __m512 s[G / 2], c[G / 2];
  narrow_halves<G>(ps, s);
  narrow_halves<G>(pc, c);
  const __m512i sign = _mm512_set1_epi32(int(0x80000000u));
  for (int i = 0; i < G / 2; i++) {
    // the quadrant n = q (an integer already: exact)
    const __m512i n = join(_mm512_cvtpd_epi32(qd[2 * i]), _mm512_cvtpd_epi32(qd[2 * i + 1]));
    const __mmask16 odd = _mm512_test_epi32_mask(n, _mm512_set1_epi32(1));
    const __mmask16 sin_neg = _mm512_test_epi32_mask(n, _mm512_set1_epi32(2));
    const __mmask16 cos_neg = _mm512_test_epi32_mask(_mm512_add_epi32(n, _mm512_set1_epi32(1)), _mm512_set1_epi32(2));
    const __m512i a = _mm512_castps_si512(_mm512_mask_blend_ps(odd, s[i], c[i]));
    const __m512i b = _mm512_castps_si512(_mm512_mask_blend_ps(odd, c[i], s[i]));
    sin_out[i] = _mm512_castsi512_ps(_mm512_mask_xor_epi32(a, sin_neg, a, sign));
    cos_out[i] = _mm512_castsi512_ps(_mm512_mask_xor_epi32(b, cos_neg, b, sign));
  }
}

// philox_box_muller of P vectors of 16 word pairs (x[i], y[i]) -> (first[i], second[i]).
template <int P>
EGGROLL_AVX512 inline void box_muller_lanes(const __m512i (&x)[P], const __m512i (&y)[P], __m512 (&first)[P],
                                            __m512 (&second)[P]) {
  __m512 u[P], v[P], lg[P], sn[P], cs[P];
  for (int i = 0; i < P; i++) {
    u[i] = _mm512_fmadd_ps(_mm512_cvtepu32_ps(x[i]), _mm512_set1_ps(kPhilox2Pow32Inv),
                           _mm512_set1_ps(kPhilox2Pow32Inv / 2.0f));
    v[i] = _mm512_fmadd_ps(_mm512_cvtepu32_ps(y[i]), _mm512_set1_ps(kPhilox2Pow32Inv2Pi),
                           _mm512_set1_ps(kPhilox2Pow32Inv2Pi / 2.0f));
  }
  log_lanes<2 * P>(u, lg);
  sincos_lanes<2 * P>(v, sn, cs);
  for (int i = 0; i < P; i++) {
    const __m512 r = _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), lg[i]));
    first[i] = _mm512_mul_ps(r, sn[i]);
    second[i] = _mm512_mul_ps(r, cs[i]);
  }
}

// Elements [4 block0, 4 block0 + 64 K) of the array keyed by `key`, in order: K groups of 16
// Philox blocks, their Box-Muller transforms side by side.
template <int K>
EGGROLL_AVX512 void fill_blocks(const NoiseKey& key, const RoundKeys& rk, NoiseDist dist, uint32_t block0, float* out) {
  __m512i w[K][4];
  for (int k = 0; k < K; k++) philox16(block0 + 16u * uint32_t(k), key.param_id, key.pair, key.epoch_bucket, rk, w[k]);
  __m512 e[K][4];  // e[k][i] lane l = element 4 (block0 + 16 k + l) + i
  if (dist == NoiseDist::Rademacher) {
    const __m512i one = _mm512_set1_epi32(0x3f800000), sign = _mm512_set1_epi32(int(0x80000000u));
    for (int k = 0; k < K; k++)
      for (int i = 0; i < 4; i++) e[k][i] = _mm512_castsi512_ps(_mm512_or_si512(one, _mm512_and_si512(w[k][i], sign)));
  } else {
    __m512i x[2 * K], y[2 * K];  // the word pairs (0, 1) and (2, 3) of every group
    for (int k = 0; k < K; k++) x[2 * k] = w[k][0], y[2 * k] = w[k][1], x[2 * k + 1] = w[k][2], y[2 * k + 1] = w[k][3];
    __m512 f[2 * K], g[2 * K];
    box_muller_lanes<2 * K>(x, y, f, g);
    for (int k = 0; k < K; k++) e[k][0] = f[2 * k], e[k][1] = g[2 * k], e[k][2] = f[2 * k + 1], e[k][3] = g[2 * k + 1];
  }
  // Interleave each group: (e0, e1) pairs, then 64-bit pairs of (e0 e1) and (e2 e3).
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i q0 = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i q1 = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
  for (int k = 0; k < K; k++, out += 64) {
    const __m512d ab_lo = _mm512_castps_pd(_mm512_permutex2var_ps(e[k][0], lo, e[k][1]));
    const __m512d ab_hi = _mm512_castps_pd(_mm512_permutex2var_ps(e[k][0], hi, e[k][1]));
    const __m512d cd_lo = _mm512_castps_pd(_mm512_permutex2var_ps(e[k][2], lo, e[k][3]));
    const __m512d cd_hi = _mm512_castps_pd(_mm512_permutex2var_ps(e[k][2], hi, e[k][3]));
    _mm512_storeu_pd(out, _mm512_permutex2var_pd(ab_lo, q0, cd_lo));
    _mm512_storeu_pd(out + 16, _mm512_permutex2var_pd(ab_lo, q1, cd_lo));
    _mm512_storeu_pd(out + 32, _mm512_permutex2var_pd(ab_hi, q0, cd_hi));
    _mm512_storeu_pd(out + 48, _mm512_permutex2var_pd(ab_hi, q1, cd_hi));
  }
}

// Groups of 16 blocks per fill_blocks call in the main loop: two measured fastest on the AMD EPYC
// (Gaussian 1.48-1.50 ns/element against 1.60 for one group and 1.54 for four, one thread).
constexpr int kFillGroups = 2;

EGGROLL_AVX512 void philox16_store(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                                   uint32_t* out) {
  __m512i w[4];
  philox16(c0, c1, c2, c3, RoundKeys(k0, k1), w);
  alignas(64) uint32_t t[4][16];
  for (int i = 0; i < 4; i++) _mm512_store_si512(t[i], w[i]);
  for (int l = 0; l < 16; l++)
    for (int i = 0; i < 4; i++) out[4 * l + i] = t[i][l];
}

EGGROLL_AVX512 void box_muller_n(const uint32_t* x, const uint32_t* y, size_t n, float* first, float* second) {
  size_t i = 0;
  // 64 pairs at a time, as fill_blocks<kFillGroups> transforms them, then 16 with a mask
  constexpr int P = 2 * kFillGroups;
  for (; n - i >= 16 * P; i += 16 * P) {
    __m512i xv[P], yv[P];
    for (int p = 0; p < P; p++) xv[p] = _mm512_loadu_si512(x + i + 16 * p), yv[p] = _mm512_loadu_si512(y + i + 16 * p);
    __m512 a[P], b[P];
    box_muller_lanes<P>(xv, yv, a, b);
    for (int p = 0; p < P; p++) _mm512_storeu_ps(first + i + 16 * p, a[p]), _mm512_storeu_ps(second + i + 16 * p, b[p]);
  }
  for (; i < n; i += 16) {
    const size_t len = std::min<size_t>(16, n - i);
    const __mmask16 m = __mmask16((1u << len) - 1u);
    const __m512i xv[1] = {_mm512_maskz_loadu_epi32(m, x + i)}, yv[1] = {_mm512_maskz_loadu_epi32(m, y + i)};
    __m512 a[1], b[1];
    box_muller_lanes<1>(xv, yv, a, b);
    _mm512_mask_storeu_ps(first + i, m, a[0]);
    _mm512_mask_storeu_ps(second + i, m, b[0]);
  }
}

}  // namespace

bool noise_simd_supported() { return cpu_has_avx512f(); }

bool noise_simd_active() {
  static const bool on = noise_simd_supported() && simd_env_allows("EGGROLL_NOISE_SIMD");
  return on;
}

void philox4x32_10_x16(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, uint32_t out[64]) {
  if (!noise_simd_supported()) throw std::logic_error("philox4x32_10_x16: this CPU has no AVX-512F");
  philox16_store(c0, c1, c2, c3, k0, k1, out);
}

void box_muller_simd(const uint32_t* x, const uint32_t* y, size_t n, float* first, float* second) {
  if (!noise_simd_supported()) throw std::logic_error("box_muller_simd: this CPU has no AVX-512F");
  box_muller_n(x, y, n, first, second);
}

void fill_noise_simd(const NoiseKey& key, NoiseDist dist, size_t start, size_t count, float* out) {
  if (!noise_simd_supported()) throw std::logic_error("fill_noise_simd: this CPU has no AVX-512F");
  if (count == 0) return;
  if (start > kMaxNoiseElements || count > kMaxNoiseElements - start)
    throw std::out_of_range("fill_noise: range exceeds 2^34 elements");
  uint64_t j = start;
  const uint64_t end = uint64_t(start) + count;
  if (j & 3u) {  // the rest of a partial first block
    const uint64_t head = std::min<uint64_t>(end, (j | 3u) + 1) - j;
    fill_noise_scalar(key, dist, size_t(j), size_t(head), out);
    out += head;
    j += head;
  }
  const RoundKeys rk(static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32));
  for (; end - j >= 64 * kFillGroups; j += 64 * kFillGroups, out += 64 * kFillGroups)
    fill_blocks<kFillGroups>(key, rk, dist, static_cast<uint32_t>(j >> 2), out);
  for (; end - j >= 64; j += 64, out += 64) fill_blocks<1>(key, rk, dist, static_cast<uint32_t>(j >> 2), out);
  if (j < end) {  // a partial group: the block counter of lanes past the end may wrap; they are dropped
    alignas(64) float tmp[64];
    fill_blocks<1>(key, rk, dist, static_cast<uint32_t>(j >> 2), tmp);
    std::memcpy(out, tmp, size_t(end - j) * sizeof(float));
  }
}

}  // namespace eggroll
