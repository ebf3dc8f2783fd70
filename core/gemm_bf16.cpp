#include "core/gemm_bf16.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/dtype.h"
#include "core/gemm.h"
#include "core/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define EGGROLL_X86 1
#endif

namespace eggroll {

namespace {

constexpr int64_t NR = 64;               // outputs per tile (4 vectors of 16 fp32 lanes)
constexpr int64_t MR = 6;                // rows per micro-tile
constexpr int64_t KP = kGemmKC / 2;      // k pairs per block
static_assert(kGemmKC % 2 == 0, "k blocks hold whole pairs");

inline float widen(uint16_t b) { return bf16_dot_flush(bf16_to_f32(b)); }

// X [rows, in] fp32 -> bf16 pairs [rows][pairs] (uint32: low half k = 2p, high half 2p+1).
void round_rows(const float* X, int64_t rows, int64_t in, int64_t pairs, std::vector<uint32_t>& out) {
  out.assign(size_t(rows * pairs), 0u);
  for (int64_t r = 0; r < rows; r++) {
    const float* x = X + r * in;
    uint32_t* o = out.data() + r * pairs;
    for (int64_t k = 0; k + 1 < in; k += 2)
      o[k / 2] = uint32_t(f32_to_bf16(x[k])) | (uint32_t(f32_to_bf16(x[k + 1])) << 16);
    if (in % 2) o[in / 2] = f32_to_bf16(x[in - 1]);
  }
}

// ---- scalar kernel: the definition, one fma at a time -------------------------------------------

void micro_scalar(const uint32_t* X, int64_t ldx, const uint16_t* Bp, float* Y, int64_t ldy, int64_t mr, int64_t nr,
                  int64_t kp, bool first) {
  for (int64_t r = 0; r < mr; r++) {
    float acc[NR];
    std::fill_n(acc, NR, 0.f);
    for (int64_t p = 0; p < kp; p++) {
      const uint32_t xp = X[r * ldx + p];
      const float xe = widen(uint16_t(xp & 0xffff)), xo = widen(uint16_t(xp >> 16));
      const uint16_t* b = Bp + p * NR * 2;
      for (int64_t j = 0; j < nr; j++) {
        acc[j] = bf16_dot_flush(std::fma(xo, widen(b[2 * j + 1]), acc[j]));
        acc[j] = bf16_dot_flush(std::fma(xe, widen(b[2 * j]), acc[j]));
      }
    }
    float* y = Y + r * ldy;
    for (int64_t j = 0; j < nr; j++) y[j] = first ? acc[j] : y[j] + acc[j];
  }
}

// ---- AVX512-BF16 kernel ------------------------------------------------------------------------

#if EGGROLL_X86
#define EGGROLL_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

template <int R>
EGGROLL_BF16_TARGET void micro_avx512bf16(const uint32_t* X, int64_t ldx, const uint16_t* Bp, float* Y,
                                          int64_t ldy, int64_t nr, int64_t kp, bool first) {
  __m512 acc[R][4];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; p++) {
    const uint16_t* b = Bp + p * NR * 2;
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 32),
                   b2 = (__m512bh)_mm512_loadu_si512(b + 64), b3 = (__m512bh)_mm512_loadu_si512(b + 96);
    for (int r = 0; r < R; r++) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(int(X[r * ldx + p]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
      acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, b2);
      acc[r][3] = _mm512_dpbf16_ps(acc[r][3], x, b3);
    }
  }
  for (int v = 0; v < 4; v++) {
    const int64_t left = nr - 16 * v;
    if (left <= 0) break;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    for (int r = 0; r < R; r++) {
      float* y = Y + r * ldy + 16 * v;
      const __m512 o = first ? acc[r][v] : _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), acc[r][v]);
      _mm512_mask_storeu_ps(y, m, o);
    }
  }
}

EGGROLL_BF16_TARGET void micro_avx512bf16_rows(const uint32_t* X, int64_t ldx, const uint16_t* Bp, float* Y,
                                               int64_t ldy, int64_t mr, int64_t nr, int64_t kp, bool first) {
  switch (mr) {
    case 6: return micro_avx512bf16<6>(X, ldx, Bp, Y, ldy, nr, kp, first);
    case 5: return micro_avx512bf16<5>(X, ldx, Bp, Y, ldy, nr, kp, first);
    case 4: return micro_avx512bf16<4>(X, ldx, Bp, Y, ldy, nr, kp, first);
    case 3: return micro_avx512bf16<3>(X, ldx, Bp, Y, ldy, nr, kp, first);
    case 2: return micro_avx512bf16<2>(X, ldx, Bp, Y, ldy, nr, kp, first);
    default: return micro_avx512bf16<1>(X, ldx, Bp, Y, ldy, nr, kp, first);
  }
}
#endif

template <class Src>
void pack_into(PackedBf16& p, Src src, bool x_times_p) {
  // src(i) reads element i of the source array (bf16 bits out)
  const int64_t in = p.in, out = p.out, tiles = (out + NR - 1) / NR;
  parallel_for(tiles, 1, [&](int64_t t) {
    uint16_t* dst = p.data.data() + t * p.pairs * NR * 2;
    const int64_t nr = std::min(NR, out - t * NR);
    for (int64_t k = 0; k < in; k++)
      for (int64_t j = 0; j < nr; j++) {
        const int64_t o = t * NR + j;
        dst[((k / 2) * NR + j) * 2 + (k % 2)] = src(x_times_p ? k * out + o : o * in + k);
      }
  });
}

PackedBf16 shaped(int64_t in, int64_t out) {
  if (in < 0 || out < 0) throw std::invalid_argument("pack_bf16: negative shape");
  PackedBf16 p;
  p.in = in, p.out = out, p.pairs = (in + 1) / 2;
  p.data.assign(size_t(((out + NR - 1) / NR) * p.pairs * NR * 2), 0);
  return p;
}

}  // namespace

const char* bf16_kernel_name(Bf16Kernel k) { return k == Bf16Kernel::Avx512Bf16 ? "avx512bf16" : "scalar"; }

bool bf16_kernel_supported(Bf16Kernel k) {
  if (k == Bf16Kernel::Scalar) return true;
#if EGGROLL_X86
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool cpu_has_bf16_dot() { return bf16_kernel_supported(Bf16Kernel::Avx512Bf16); }

Bf16Kernel best_bf16_kernel() {
  static const Bf16Kernel k = [] {
    if (const char* e = std::getenv("EGGROLL_BF16_KERNEL")) {
      const std::string s = e;
      if (s == "scalar") return Bf16Kernel::Scalar;
      if (s == "avx512bf16" && bf16_kernel_supported(Bf16Kernel::Avx512Bf16)) return Bf16Kernel::Avx512Bf16;
      if (s != "avx512bf16")
        throw std::invalid_argument("EGGROLL_BF16_KERNEL='" + s + "': expected scalar or avx512bf16");
      throw std::invalid_argument("EGGROLL_BF16_KERNEL=avx512bf16: this CPU has no AVX512-BF16");
    }
    return cpu_has_bf16_dot() ? Bf16Kernel::Avx512Bf16 : Bf16Kernel::Scalar;
  }();
  return k;
}

PackedBf16 pack_bf16(const uint16_t* bits, int64_t in, int64_t out, bool x_times_p) {
  PackedBf16 p = shaped(in, out);
  repack_bf16(p, bits, x_times_p);
  return p;
}

PackedBf16 pack_bf16(const float* values, int64_t in, int64_t out, bool x_times_p) {
  PackedBf16 p = shaped(in, out);
  repack_bf16(p, values, x_times_p);
  return p;
}

void repack_bf16(PackedBf16& p, const uint16_t* bits, bool x_times_p) {
  pack_into(p, [bits](int64_t i) { return bits[i]; }, x_times_p);
}

void repack_bf16(PackedBf16& p, const float* values, bool x_times_p) {
  pack_into(p, [values](int64_t i) { return f32_to_bf16(values[i]); }, x_times_p);
}

void gemm_bf16(const float* X, const PackedBf16& W, float* Y, int64_t rows, Bf16Kernel kernel) {
  const int64_t in = W.in, out = W.out, pairs = W.pairs, tiles = (out + NR - 1) / NR;
  if (rows <= 0 || out <= 0) return;
  if (!bf16_kernel_supported(kernel)) throw std::invalid_argument("gemm_bf16: kernel not supported on this CPU");
  if (in == 0) {
    std::fill_n(Y, rows * out, 0.f);
    return;
  }
  thread_local std::vector<uint32_t> xb;
  round_rows(X, rows, in, pairs, xb);
  const uint32_t* Xb = xb.data();
  parallel_for(tiles, 1, [&](int64_t t) {  // a thread's share never changes what a tile computes
    const int64_t o0 = t * NR, nr = std::min(NR, out - o0);
    for (int64_t p0 = 0; p0 < pairs; p0 += KP) {
      const int64_t kp = std::min(KP, pairs - p0);
      const uint16_t* B = W.data.data() + (t * pairs + p0) * NR * 2;
      for (int64_t r0 = 0; r0 < rows; r0 += MR) {
        const int64_t mr = std::min(MR, rows - r0);
#if EGGROLL_X86
        if (kernel == Bf16Kernel::Avx512Bf16) {
          micro_avx512bf16_rows(Xb + r0 * pairs + p0, pairs, B, Y + r0 * out + o0, out, mr, nr, kp, p0 == 0);
          continue;
        }
#endif
        micro_scalar(Xb + r0 * pairs + p0, pairs, B, Y + r0 * out + o0, out, mr, nr, kp, p0 == 0);
      }
    }
  });
}

}  // namespace eggroll
