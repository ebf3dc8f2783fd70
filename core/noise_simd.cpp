// AVX-512F noise: Philox4x32-10 for 16 consecutive blocks at once and the Box-Muller transform
// (log, sqrt, sin/cos) for 16 lanes, computing the same bits as the scalar definition of
// core/philox.h / core/noise.h for every element (every operation is the same IEEE operation
// with the same rounding, in the same order; our double-precision log and sin/cos,
// philox_logf/philox_sincosf, run 8 double lanes at a time). Compiled with a target attribute,
// so a build without -march=native still has
// it; fill_noise picks it at run time when the CPU has AVX-512F (noise_simd_active).
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
// series_poly of 8 double lanes: the same fma chain.
template <philox_math::Series S, int N>
EGGROLL_AVX512 inline __m512d series_poly8(__m512d w) {
  __m512d p = _mm512_set1_pd(Coefs<S, N>::v[N]);
  for (int i = N - 1; i >= 1; --i) p = _mm512_fmadd_pd(p, w, _mm512_set1_pd(Coefs<S, N>::v[size_t(i)]));
  return p;
}

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

// philox_logf of 8 lanes: m (the significands scaled to [sqrt(1/2), sqrt(2)), as floats) and k.
EGGROLL_AVX512 inline __m256 log8(__m256 mf, __m256i k) {
  using namespace philox_math;
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d m = _mm512_cvtps_pd(mf);
  const __m512d f = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
  // atanh_series
  const __m512d w = _mm512_mul_pd(f, f);
  const __m512d a = _mm512_fmadd_pd(_mm512_mul_pd(f, w), series_poly8<Series::Atanh, kLogTerms>(w), f);
  return _mm512_cvtpd_ps(_mm512_fmadd_pd(_mm512_cvtepi32_pd(k), _mm512_set1_pd(kLn2), _mm512_add_pd(a, a)));
}

// philox_logf of 16 lanes.
EGGROLL_AVX512 inline __m512 log16(__m512 x) {
  using namespace philox_math;
  const __m512i ix = _mm512_castps_si512(x);
  const __m512i mant = _mm512_and_si512(ix, _mm512_set1_epi32(0x7fffff));
  const __mmask16 up = _mm512_cmpge_epu32_mask(mant, _mm512_set1_epi32(int(kSqrt2Mant)));
  const __m512i k0 = _mm512_sub_epi32(_mm512_srli_epi32(ix, 23), _mm512_set1_epi32(127));
  const __m512i k = _mm512_mask_add_epi32(k0, up, k0, _mm512_set1_epi32(1));
  const __m512i e = _mm512_mask_blend_epi32(up, _mm512_set1_epi32(127 << 23), _mm512_set1_epi32(126 << 23));
  const __m512 m = _mm512_castsi512_ps(_mm512_or_si512(mant, e));
  return join(log8(lo_half(m), lo_half(k)), log8(hi_half(m), hi_half(k)));
}

// Quadrant and sin/cos of the reduced argument (rounded to float) of 8 lanes.
EGGROLL_AVX512 inline void sincos8(__m256 v, __m256& s, __m256& c, __m256i& q) {
  using namespace philox_math;
  const __m512d x = _mm512_cvtps_pd(v);
  const __m512d qd = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(kTwoOverPi)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  q = _mm512_cvtpd_epi32(qd);  // an integer already: exact
  // fma(-q, c, x) == fnmadd(q, c, x): one rounding of x - q c either way
  const __m512d r = _mm512_fnmadd_pd(qd, _mm512_set1_pd(kPio2Lo), _mm512_fnmadd_pd(qd, _mm512_set1_pd(kPio2Hi), x));
  const __m512d w = _mm512_mul_pd(r, r);
  // sin_series
  s = _mm512_cvtpd_ps(_mm512_fmadd_pd(_mm512_mul_pd(r, w), series_poly8<Series::Sin, kSinTerms>(w), r));
  // cos_series
  c = _mm512_cvtpd_ps(_mm512_fmadd_pd(w, series_poly8<Series::Cos, kCosTerms>(w), _mm512_set1_pd(1.0)));
}

// philox_sincosf of 16 lanes.
EGGROLL_AVX512 inline void sincos16(__m512 v, __m512& sin_out, __m512& cos_out) {
  __m256 s_lo, c_lo, s_hi, c_hi;
  __m256i q_lo, q_hi;
  sincos8(lo_half(v), s_lo, c_lo, q_lo);
  sincos8(hi_half(v), s_hi, c_hi, q_hi);
  const __m512 s = join(s_lo, s_hi), c = join(c_lo, c_hi);
  const __m512i n = join(q_lo, q_hi);
  const __mmask16 odd = _mm512_test_epi32_mask(n, _mm512_set1_epi32(1));
  const __mmask16 sin_neg = _mm512_test_epi32_mask(n, _mm512_set1_epi32(2));
  const __mmask16 cos_neg = _mm512_test_epi32_mask(_mm512_add_epi32(n, _mm512_set1_epi32(1)), _mm512_set1_epi32(2));
  const __m512i sign = _mm512_set1_epi32(int(0x80000000u));
  const __m512i ps = _mm512_castps_si512(_mm512_mask_blend_ps(odd, s, c));
  const __m512i pc = _mm512_castps_si512(_mm512_mask_blend_ps(odd, c, s));
  sin_out = _mm512_castsi512_ps(_mm512_mask_xor_epi32(ps, sin_neg, ps, sign));
  cos_out = _mm512_castsi512_ps(_mm512_mask_xor_epi32(pc, cos_neg, pc, sign));
}

// philox_box_muller of 16 word pairs.
EGGROLL_AVX512 inline void box_muller16(__m512i x, __m512i y, __m512& first, __m512& second) {
  const __m512 u = _mm512_fmadd_ps(_mm512_cvtepu32_ps(x), _mm512_set1_ps(kPhilox2Pow32Inv),
                                   _mm512_set1_ps(kPhilox2Pow32Inv / 2.0f));
  const __m512 v = _mm512_fmadd_ps(_mm512_cvtepu32_ps(y), _mm512_set1_ps(kPhilox2Pow32Inv2Pi),
                                   _mm512_set1_ps(kPhilox2Pow32Inv2Pi / 2.0f));
  const __m512 r = _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), log16(u)));
  __m512 sn, cs;
  sincos16(v, sn, cs);
  first = _mm512_mul_ps(r, sn);
  second = _mm512_mul_ps(r, cs);
}

// Elements [4 block0, 4 block0 + 64) of the array keyed by `key`, in order.
EGGROLL_AVX512 void fill_64(const NoiseKey& key, const RoundKeys& rk, NoiseDist dist, uint32_t block0, float* out) {
  __m512i w[4];
  philox16(block0, key.param_id, key.pair, key.epoch_bucket, rk, w);
  __m512 e[4];  // e[i] lane l = element 4 (block0 + l) + i
  if (dist == NoiseDist::Rademacher) {
    const __m512i one = _mm512_set1_epi32(0x3f800000), sign = _mm512_set1_epi32(int(0x80000000u));
    for (int i = 0; i < 4; i++) e[i] = _mm512_castsi512_ps(_mm512_or_si512(one, _mm512_and_si512(w[i], sign)));
  } else {
    box_muller16(w[0], w[1], e[0], e[1]);
    box_muller16(w[2], w[3], e[2], e[3]);
  }
  // Interleave: (e0, e1) pairs, then 64-bit pairs of (e0 e1) and (e2 e3).
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512d ab_lo = _mm512_castps_pd(_mm512_permutex2var_ps(e[0], lo, e[1]));
  const __m512d ab_hi = _mm512_castps_pd(_mm512_permutex2var_ps(e[0], hi, e[1]));
  const __m512d cd_lo = _mm512_castps_pd(_mm512_permutex2var_ps(e[2], lo, e[3]));
  const __m512d cd_hi = _mm512_castps_pd(_mm512_permutex2var_ps(e[2], hi, e[3]));
  const __m512i q0 = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i q1 = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
  _mm512_storeu_pd(out, _mm512_permutex2var_pd(ab_lo, q0, cd_lo));
  _mm512_storeu_pd(out + 16, _mm512_permutex2var_pd(ab_lo, q1, cd_lo));
  _mm512_storeu_pd(out + 32, _mm512_permutex2var_pd(ab_hi, q0, cd_hi));
  _mm512_storeu_pd(out + 48, _mm512_permutex2var_pd(ab_hi, q1, cd_hi));
}

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
  for (; i < n; i += 16) {
    const size_t len = std::min<size_t>(16, n - i);
    const __mmask16 m = __mmask16((1u << len) - 1u);
    __m512 a, b;
    box_muller16(_mm512_maskz_loadu_epi32(m, x + i), _mm512_maskz_loadu_epi32(m, y + i), a, b);
    _mm512_mask_storeu_ps(first + i, m, a);
    _mm512_mask_storeu_ps(second + i, m, b);
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
  for (; end - j >= 64; j += 64, out += 64) fill_64(key, rk, dist, static_cast<uint32_t>(j >> 2), out);
  if (j < end) {  // a partial group: the block counter of lanes past the end may wrap; they are dropped
    alignas(64) float tmp[64];
    fill_64(key, rk, dist, static_cast<uint32_t>(j >> 2), tmp);
    std::memcpy(out, tmp, size_t(end - j) * sizeof(float));
  }
}

}  // namespace eggroll
