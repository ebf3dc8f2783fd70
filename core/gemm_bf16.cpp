#if defined(__x86_64__)
#include "core/avx512.h"  // first: its pragmas must precede <immintrin.h>
#endif
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
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define EGGROLL_X86 1
#endif

namespace eggroll {

namespace {

constexpr int64_t NR = 64;               // outputs per tile (4 vectors of 16 fp32 lanes)
constexpr int64_t MR = 6;                // rows per micro-tile
constexpr int64_t KP = kGemmKC / 2;      // k pairs per block
static_assert(kGemmKC % 2 == 0, "k blocks hold whole pairs");

inline float widen(uint16_t b) { return bf16_dot_flush(bf16_to_f32(b)); }

#if EGGROLL_X86
// f32_to_bf16 (core/dtype.h) on 16 lanes: round to nearest even by integer addition, NaN kept
// NaN (quiet bit set), packed into 8 pairs by vpmovdw. AVX-512F only. Rounds the whole groups of
// 16 and returns how many elements it rounded (the rest is bf16_round_pairs' scalar loop).
__attribute__((target("avx512f"))) int64_t round_pairs_avx512(const float* x, int64_t in, uint32_t* o) {
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1),
                abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000),
                quiet = _mm512_set1_epi32(0x400000);
  int64_t k = 0;
  for (; k + 16 <= in; k += 16) {
    const __m512i u = _mm512_loadu_si512(x + k);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
    __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
    r = _mm512_mask_or_epi32(r, nan, u, quiet);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + k / 2), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
  }
  return k;
}
#endif

// bf16 pairs of each product's rows, all products in one parallel region (a row's rounding is its
// own); out[i] [padded_rows[i]][pairs]: the rows past `rows` zeros (the AMX kernel reads 16 rows
// at a time).
void round_group(const Bf16Product* items, const std::vector<int>& which, int64_t rows, int64_t padded_rows,
                 std::vector<std::vector<uint32_t>>& out) {
  for (int i : which) {
    const int64_t pairs = items[i].W->pairs;
    auto& o = out[size_t(i)];
    o.resize(size_t(padded_rows * pairs));
    std::fill(o.begin() + rows * pairs, o.end(), 0u);
  }
  int64_t in = 1;
  for (int i : which) in = std::max(in, items[i].W->in);
  const int64_t n = int64_t(which.size());
  // chunks of about 64k elements
  parallel_for(n * rows, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(in, 1)), [&](int64_t t) {
    const int i = which[size_t(t / rows)];
    const int64_t r = t % rows, pairs = items[i].W->pairs;
    bf16_round_pairs(items[i].X + r * items[i].W->in, items[i].W->in, out[size_t(i)].data() + r * pairs);
  });
}

// The rank-1 epilogue of rows [0, mr) x outputs [o0, o0 + nr) of a finished Y (Bf16Product):
// ro[r] is row r's factor, rt[r] its scale.
void rank1_epilogue(float* Y, int64_t ldy, int64_t mr, int64_t nr, const float* const* ro, const float* rt, int64_t o0) {
  for (int64_t r = 0; r < mr; r++) {
    float* y = Y + r * ldy;
    const float* f = ro[r] + o0;
    const float t = rt[r];
    for (int64_t j = 0; j < nr; j++) y[j] = std::fma(f[j], t, y[j]);
  }
}

// ---- scalar kernel: the definition, one fma at a time -------------------------------------------
// ro != nullptr (the last k block of a product with a rank-1 epilogue): rank1_epilogue after the sums.
void micro_scalar(const uint32_t* X, int64_t ldx, const uint16_t* Bp, float* Y, int64_t ldy, int64_t mr, int64_t nr,
                  int64_t kp, bool first, const float* const* ro, const float* rt, int64_t o0) {
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
  if (ro) rank1_epilogue(Y, ldy, mr, nr, ro, rt, o0);
}

// ---- AVX512-BF16 kernel ------------------------------------------------------------------------

#if EGGROLL_X86
#define EGGROLL_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

template <int R>
EGGROLL_BF16_TARGET void micro_avx512bf16(const uint32_t* X, int64_t ldx, const uint16_t* Bp, float* Y,
                                          int64_t ldy, int64_t nr, int64_t kp, bool first, const float* const* ro,
                                          const float* rt, int64_t o0) {
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
      __m512 o = first ? acc[r][v] : _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), acc[r][v]);
      if (ro) o = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, ro[r] + o0 + 16 * v), _mm512_set1_ps(rt[r]), o);
      _mm512_mask_storeu_ps(y, m, o);
    }
  }
}

EGGROLL_BF16_TARGET void micro_avx512bf16_rows(const uint32_t* X, int64_t ldx, const uint16_t* Bp, float* Y,
                                               int64_t ldy, int64_t mr, int64_t nr, int64_t kp, bool first,
                                               const float* const* ro, const float* rt, int64_t o0) {
  switch (mr) {
    case 6: return micro_avx512bf16<6>(X, ldx, Bp, Y, ldy, nr, kp, first, ro, rt, o0);
    case 5: return micro_avx512bf16<5>(X, ldx, Bp, Y, ldy, nr, kp, first, ro, rt, o0);
    case 4: return micro_avx512bf16<4>(X, ldx, Bp, Y, ldy, nr, kp, first, ro, rt, o0);
    case 3: return micro_avx512bf16<3>(X, ldx, Bp, Y, ldy, nr, kp, first, ro, rt, o0);
    case 2: return micro_avx512bf16<2>(X, ldx, Bp, Y, ldy, nr, kp, first, ro, rt, o0);
    default: return micro_avx512bf16<1>(X, ldx, Bp, Y, ldy, nr, kp, first, ro, rt, o0);
  }
}

// ---- AMX-BF16 kernel ---------------------------------------------------------------------------
// One call: 16 rows x 64 outputs over the whole of k. Four fp32 C tiles (tmm0-3, 16 x 16 each)
// hold the sums from the first pair to the last (no store and reload between k blocks: keeping them
// in the tiles doubled the rate at the decode shapes), stored once, straight into Y when the call
// covers 16 rows and 64 outputs (a staging buffer only at the edges). The rows' bf16 pairs are the
// A tile tmm4 (16 rows x 16 pairs), the panel's 16 pairs x 16 outputs the B tiles tmm5-7 (the panel
// layout is already the tiles' pair-interleaved one: a B tile is 16 panel lines of 64 bytes, stride
// 256). Blocking 32 rows x 32 outputs instead (two A and two B tiles per 16 pairs) measured no faster.
// Each C element is one row's own sum, so a row's result does not depend on the batch (batch
// invariance holds within this kernel); but tdpbf16ps does not round its running sums as the
// definition does (measured on a Sapphire Rapids-class CPU: not the same bits, as close to the
// float64 product; tests/test_gemm.cpp): it is the default where it exists (speed), and the
// bit-exact checks ask for EGGROLL_BF16_KERNEL=exact. Pairs past the last whole group of 16
// continue the sums with vdpbf16ps. Rows past `mr` are zero padding, never stored. The caller
// loads the tile configuration (amx_configure).

#define EGGROLL_AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Eight tiles of 16 rows x 64 bytes, for this thread until amx_release.
EGGROLL_AMX_TARGET void amx_configure() {
  static const TileConfig cfg = [] {
    TileConfig c;
    for (int t = 0; t < 8; t++) c.colsb[t] = 64, c.rows[t] = 16;
    return c;
  }();
  _tile_loadconfig(&cfg);
}
EGGROLL_AMX_TARGET void amx_release() { _tile_release(); }

// X: 16 rows of bf16 pairs (stride ldx); Bp: a panel tile; kp: pairs.
EGGROLL_AMX_TARGET void micro_amx(const uint32_t* X, int64_t ldx, const uint16_t* Bp, float* Y, int64_t ldy,
                                  int64_t mr, int64_t nr, int64_t kp) {
  const int64_t kg = kp / 16 * 16;
  const bool whole = mr == 16 && nr == NR && kg == kp;
  alignas(64) float c[16][NR];
  float* C = whole ? Y : &c[0][0];
  const int64_t ldc = whole ? ldy : NR;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t p = 0; p < kg; p += 16) {  // C tile v: outputs 16 v ..
    const uint16_t* b = Bp + p * NR * 2;
    _tile_loadd(4, X + p, ldx * 4);
    _tile_loadd(5, b, NR * 4);
    _tile_dpbf16ps(0, 4, 5);
    _tile_loadd(6, b + 32, NR * 4);
    _tile_dpbf16ps(1, 4, 6);
    _tile_loadd(7, b + 64, NR * 4);
    _tile_dpbf16ps(2, 4, 7);
    _tile_loadd(5, b + 96, NR * 4);
    _tile_dpbf16ps(3, 4, 5);
  }
  _tile_stored(0, C, ldc * 4);
  _tile_stored(1, C + 16, ldc * 4);
  _tile_stored(2, C + 32, ldc * 4);
  _tile_stored(3, C + 48, ldc * 4);
  if (whole) return;
  for (int64_t p = kg; p < kp; p++) {
    const uint16_t* b = Bp + p * NR * 2;
    for (int64_t r = 0; r < mr; r++) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(int(X[r * ldx + p]));
      for (int v = 0; v < 4; v++)
        _mm512_store_ps(&c[r][16 * v], _mm512_dpbf16_ps(_mm512_load_ps(&c[r][16 * v]), x,
                                                        (__m512bh)_mm512_loadu_si512(b + 32 * v)));
    }
  }
  for (int64_t r = 0; r < mr; r++) std::copy_n(c[r], nr, Y + r * ldy);
}

bool amx_usable() {
  // Linux hands a process the AMX tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM for
  // XFEATURE_XTILEDATA); without it the first tile instruction faults.
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;  // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
#ifdef __linux__
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return ok;
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

const char* bf16_kernel_name(Bf16Kernel k) {
  switch (k) {
    case Bf16Kernel::Avx512Bf16: return "avx512bf16";
    case Bf16Kernel::Amx: return "amx";
    default: return "scalar";
  }
}

bool bf16_kernel_supported(Bf16Kernel k) {
  if (k == Bf16Kernel::Scalar) return true;
#if EGGROLL_X86
  const bool avx512bf16 = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  // the AMX kernel finishes a block's last pairs with vdpbf16ps
  return k == Bf16Kernel::Amx ? avx512bf16 && amx_usable() : avx512bf16;
#else
  return false;
#endif
}

bool cpu_has_bf16_dot() { return bf16_kernel_supported(Bf16Kernel::Avx512Bf16); }

Bf16Kernel best_exact_bf16_kernel() {
  return cpu_has_bf16_dot() ? Bf16Kernel::Avx512Bf16 : Bf16Kernel::Scalar;
}

Bf16Kernel best_bf16_kernel() {
  static const Bf16Kernel k = [] {
    if (const char* e = std::getenv("EGGROLL_BF16_KERNEL")) {
      const std::string s = e;
      if (s == "exact") return best_exact_bf16_kernel();
      for (Bf16Kernel k : {Bf16Kernel::Scalar, Bf16Kernel::Avx512Bf16, Bf16Kernel::Amx}) {
        if (s != bf16_kernel_name(k)) continue;
        if (!bf16_kernel_supported(k))
          throw std::invalid_argument("EGGROLL_BF16_KERNEL=" + s + ": this CPU (or OS) does not offer it");
        return k;
      }
      throw std::invalid_argument("EGGROLL_BF16_KERNEL='" + s + "': expected exact, scalar, avx512bf16 or amx");
    }
    return bf16_kernel_supported(Bf16Kernel::Amx) ? Bf16Kernel::Amx : best_exact_bf16_kernel();
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

void bf16_round_pairs(const float* x, int64_t in, uint32_t* out) {
  int64_t k0 = 0;  // elements rounded by the vector loop (a multiple of 16, so pairs stay whole)
#if EGGROLL_X86
  if (cpu_has_avx512f()) k0 = round_pairs_avx512(x, in, out);
#endif
  for (int64_t k = k0; k + 1 < in; k += 2) out[k / 2] = uint32_t(f32_to_bf16(x[k])) | (uint32_t(f32_to_bf16(x[k + 1])) << 16);
  if (in % 2) out[in / 2] = f32_to_bf16(x[in - 1]);
}

void repack_bf16(PackedBf16& p, const uint16_t* bits, bool x_times_p) {
  pack_into(p, [bits](int64_t i) { return bits[i]; }, x_times_p);
}

void repack_bf16(PackedBf16& p, const float* values, bool x_times_p) {
  pack_into(p, [values](int64_t i) { return f32_to_bf16(values[i]); }, x_times_p);
}

void gemm_bf16_group(const Bf16Product* items, int n, int64_t rows, Bf16Kernel kernel) {
  if (rows <= 0 || n <= 0) return;
  if (!bf16_kernel_supported(kernel)) throw std::invalid_argument("gemm_bf16: kernel not supported on this CPU");
  const bool amx = kernel == Bf16Kernel::Amx;
  // each product's inputs rounded to bf16 pairs; its panel tiles numbered after the previous
  // products' (first[i] .. first[i + 1])
  thread_local std::vector<std::vector<uint32_t>> xbs;
  if (xbs.size() < size_t(n)) xbs.resize(size_t(n));
  std::vector<int64_t> first(size_t(n) + 1, 0);
  std::vector<int> rounded;
  for (int i = 0; i < n; i++) {
    const PackedBf16& W = *items[i].W;
    int64_t tiles = 0;
    if (W.out > 0 && W.in == 0) {
      std::fill_n(items[i].Y, rows * W.out, 0.f);
      if (items[i].rank1_out) rank1_epilogue(items[i].Y, W.out, rows, W.out, items[i].rank1_out, items[i].rank1_t, 0);
    } else if (W.out > 0) {
      rounded.push_back(i);
      tiles = (W.out + NR - 1) / NR;
    }
    first[size_t(i) + 1] = first[size_t(i)] + tiles;
  }
  round_group(items, rounded, rows, amx ? (rows + 15) / 16 * 16 : rows, xbs);
  const int64_t total = first[size_t(n)];
  if (total == 0) return;
  std::vector<const uint32_t*> xp(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) xp[size_t(i)] = xbs[size_t(i)].data();
  // global tile t -> (product i, its tile t - first[i]); the tile's work is what gemm_bf16 of
  // product i alone does for it, so a group gives the same bits as its products one by one
  auto product_of = [&](int64_t t) {
    int i = 0;
    while (t >= first[size_t(i) + 1]) i++;
    return i;
  };
#if EGGROLL_X86
  if (amx) {  // several panel tiles per chunk: each chunk loads the tile configuration once
    parallel_for_chunks(total, std::max<int64_t>(1, total / (4 * num_threads())), [&](int64_t tb, int64_t te) {
      amx_configure();  // per chunk: other code on this thread may use tiles too
      for (int64_t g = tb; g < te; g++) {
        const int i = product_of(g);
        const PackedBf16& W = *items[i].W;
        const int64_t t = g - first[size_t(i)], out = W.out, pairs = W.pairs, nr = std::min(NR, out - t * NR);
        for (int64_t r0 = 0; r0 < rows; r0 += 16) {
          const int64_t mr = std::min<int64_t>(16, rows - r0);
          float* Y = items[i].Y + r0 * out + t * NR;
          micro_amx(xp[size_t(i)] + r0 * pairs, pairs, W.data.data() + t * pairs * NR * 2, Y, out, mr, nr, pairs);
          if (items[i].rank1_out) rank1_epilogue(Y, out, mr, nr, items[i].rank1_out + r0, items[i].rank1_t + r0, t * NR);
        }
      }
      amx_release();
    });
    return;
  }
#endif
  parallel_for(total, 1, [&](int64_t g) {  // a thread's share never changes what a tile computes
    const int i = product_of(g);
    const PackedBf16& W = *items[i].W;
    const int64_t t = g - first[size_t(i)], out = W.out, pairs = W.pairs;
    const uint32_t* Xb = xp[size_t(i)];
    float* Y = items[i].Y;
    const int64_t o0 = t * NR, nr = std::min(NR, out - o0);
    for (int64_t p0 = 0; p0 < pairs; p0 += KP) {
      const int64_t kp = std::min(KP, pairs - p0);
      const uint16_t* B = W.data.data() + (t * pairs + p0) * NR * 2;
      const bool last = p0 + KP >= pairs;  // the epilogue goes with the last k block
      for (int64_t r0 = 0; r0 < rows; r0 += MR) {
        const int64_t mr = std::min(MR, rows - r0);
        const float* const* ro = last && items[i].rank1_out ? items[i].rank1_out + r0 : nullptr;
        const float* rt = ro ? items[i].rank1_t + r0 : nullptr;
#if EGGROLL_X86
        if (kernel == Bf16Kernel::Avx512Bf16) {
          micro_avx512bf16_rows(Xb + r0 * pairs + p0, pairs, B, Y + r0 * out + o0, out, mr, nr, kp, p0 == 0, ro, rt,
                                o0);
          continue;
        }
#endif
        micro_scalar(Xb + r0 * pairs + p0, pairs, B, Y + r0 * out + o0, out, mr, nr, kp, p0 == 0, ro, rt, o0);
      }
    }
  });
}

void gemm_bf16(const float* X, const PackedBf16& W, float* Y, int64_t rows, Bf16Kernel kernel) {
  const Bf16Product one{X, &W, Y};
  gemm_bf16_group(&one, 1, rows, kernel);
}

}  // namespace eggroll
