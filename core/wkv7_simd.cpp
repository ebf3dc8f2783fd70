// AVX-512F WKV-7: the CPU backend's kernel for ref::wkv7_rows (core/ops/wkv7.h), the same bits.
//
// The reference walks one state row i (a value index) at a time and sums over the key index j
// in order: two 64-term sequential sums per row, each a chain of dependent additions. Here the
// 16 lanes of a vector are 16 rows, so every row keeps its own j order and its own roundings
// (the same IEEE operations as the reference, core/ops/wkv7.cpp); the state, stored [i][j], is
// transposed into [j][i] in 16 x 16 register blocks on the way in and back on the way out.
// Compiled with a target attribute and picked at run time (core/avx512.h; EGGROLL_WKV_SIMD=0
// forces the reference). -ffp-contract=off for this file (CMakeLists.txt): a product and a sum
// stay two roundings, as in the reference.
#include "core/avx512.h"  // first: its pragmas must precede <immintrin.h>

#include <algorithm>

#include "core/ops/wkv7.h"
#include "core/parallel.h"

namespace eggroll {
namespace {

// dst[c * dst_stride + r] = src[r * src_stride + c] for a 16 x 16 block (unpack pairs, then
// 2 x 2 and 4 x 4 blocks of 128-bit lanes).
EGGROLL_AVX512 inline void transpose16(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  __m512 t[16], u[16];
  for (int p = 0; p < 8; p++) {
    const __m512 a = _mm512_loadu_ps(src + (2 * p) * src_stride), b = _mm512_loadu_ps(src + (2 * p + 1) * src_stride);
    t[2 * p] = _mm512_unpacklo_ps(a, b);      // per 128-bit lane L: a0 b0 a1 b1 (columns 4L..)
    t[2 * p + 1] = _mm512_unpackhi_ps(a, b);  //                    a2 b2 a3 b3
  }
  for (int g = 0; g < 4; g++) {  // u[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88),
                 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    _mm512_storeu_ps(dst + (c + 0) * dst_stride, _mm512_shuffle_f32x4(v0, w0, 0x88));
    _mm512_storeu_ps(dst + (c + 4) * dst_stride, _mm512_shuffle_f32x4(v1, w1, 0x88));
    _mm512_storeu_ps(dst + (c + 8) * dst_stride, _mm512_shuffle_f32x4(v0, w0, 0xDD));
    _mm512_storeu_ps(dst + (c + 12) * dst_stride, _mm512_shuffle_f32x4(v1, w1, 0xDD));
  }
}

// One head: S [64][64] (row = value index i); the operations of ref::wkv7_head, rows in lanes.
// `next` (or null): the state this thread updates next, fetched into cache meanwhile (the state
// is the op's memory traffic: 16 KiB read and written per head, most of it from DRAM at large
// batches).
EGGROLL_AVX512 void wkv7_head_avx512(float* S, const float* r, const float* decay, const float* k, const float* v,
                                     const float* kk, const float* a, float* y, const float* next) {
  alignas(64) float T[64 * 64];  // T[j][i] = S[i][j]
  for (int ib = 0; ib < 64; ib += 16)
    for (int jb = 0; jb < 64; jb += 16) transpose16(S + ib * 64 + jb, 64, T + jb * 64 + ib, 64);
  __m512 sa[4], acc[4], vi[4];
  for (int q = 0; q < 4; q++) sa[q] = _mm512_setzero_ps(), acc[q] = _mm512_setzero_ps(), vi[q] = _mm512_loadu_ps(v + 16 * q);
  for (int j = 0; j < 64; j++) {  // sa_i -= S[i][j] kk[j]
    const __m512 kkj = _mm512_set1_ps(kk[j]);
    for (int q = 0; q < 4; q++) sa[q] = _mm512_sub_ps(sa[q], _mm512_mul_ps(_mm512_load_ps(T + j * 64 + 16 * q), kkj));
  }
  for (int j = 0; j < 64; j++) {  // S[i][j] = fma(v_i, k_j, fma(S[i][j], decay_j, sa_i b_j)); y_i += S[i][j] r_j
    const float bj = kk[j] * a[j];
    const __m512 b = _mm512_set1_ps(bj), d = _mm512_set1_ps(decay[j]), kj = _mm512_set1_ps(k[j]),
                 rj = _mm512_set1_ps(r[j]);
    if (next)
      for (int c = 0; c < 64; c += 16) _mm_prefetch(reinterpret_cast<const char*>(next + j * 64 + c), _MM_HINT_T0);
    for (int q = 0; q < 4; q++) {
      float* t = T + j * 64 + 16 * q;
      __m512 s = _mm512_mul_ps(sa[q], b);
      s = _mm512_fmadd_ps(_mm512_load_ps(t), d, s);
      s = _mm512_fmadd_ps(vi[q], kj, s);
      _mm512_store_ps(t, s);
      acc[q] = _mm512_add_ps(acc[q], _mm512_mul_ps(s, rj));
    }
  }
  for (int q = 0; q < 4; q++) _mm512_storeu_ps(y + 16 * q, acc[q]);
  for (int jb = 0; jb < 64; jb += 16)
    for (int ib = 0; ib < 64; ib += 16) transpose16(T + jb * 64 + ib, 64, S + ib * 64 + jb, 64);
}

}  // namespace

bool wkv7_simd_active() {
  static const bool on = cpu_has_avx512f() && simd_env_allows("EGGROLL_WKV_SIMD");
  return on;
}

void wkv7_rows_cpu(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
                   const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
                   int64_t B, int64_t H) {
  if (!wkv7_simd_active()) {
    ref::wkv7_rows(state, slots, slot_stride, layer_offset, r, decay, k, v, kk, a, y, B, H);
    return;
  }
  auto head_state = [&](int64_t ih) {
    return state + int64_t(slots[ih / H]) * slot_stride + layer_offset + (ih % H) * kWkvHeadState;
  };
  // a few runs of consecutive heads per thread, so each head's successor is usually its own
  const int64_t grain = std::max<int64_t>(1, B * H / (4 * int64_t(num_threads())));
  parallel_for_chunks(B * H, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t ih = lo; ih < hi; ih++) {
      const int64_t o = ih * 64;  // == row * C + head * 64
      wkv7_head_avx512(head_state(ih), r + o, decay + o, k + o, v + o, kk + o, a + o, y + o,
                       ih + 1 < hi ? head_state(ih + 1) : nullptr);
    }
  });
}

}  // namespace eggroll
