// AVX-512F WKV-7: the CPU backend's kernel for ref::wkv7_rows (core/ops/wkv7.h), the same bits.
//
// The state is stored [j][i] (key index major, core/ops/wkv7.h), so the 16 lanes of a vector are
// 16 value indices i of one key index j: every i keeps its own j order and its own roundings (the
// same IEEE operations as the reference, core/ops/wkv7.cpp), and no lane ever needs another's
// value: no transposes, no horizontal sums. Compiled with a target attribute and picked at run
// time (core/avx512.h; EGGROLL_WKV_SIMD=0 forces the reference). -ffp-contract=off for this file
// (CMakeLists.txt): a product and a sum stay two roundings, as in the reference.
#include "core/avx512.h"  // first: its pragmas must precede <immintrin.h>

#include <algorithm>

#include "core/ops/wkv7.h"
#include "core/parallel.h"

namespace eggroll {
namespace {

// One head: S [64 (j)][64 (i)]; the operations of ref::wkv7_head, value indices in lanes.
// `next` (or null): the state this thread updates next, fetched into L2 meanwhile, two of its 256
// cache lines per j in each of the two loops (the state is the op's memory traffic: 16 KiB read
// and written per head, most of it from DRAM at large batches; spread out and into L2 this ran
// the 0.1b shapes' WKV at ~1.2-1.5x the speed of fetching each whole line into L1 during the
// second loop alone, bench of wkv7_rows_cpu at batch 64 and 256 on an AMX Xeon, 2 threads).
EGGROLL_AVX512 void wkv7_head_avx512(float* S, const float* r, const float* decay, const float* k, const float* v,
                                     const float* kk, const float* a, float* y, const float* next) {
  __m512 sa[4], acc[4], vi[4];
  for (int q = 0; q < 4; q++) sa[q] = _mm512_setzero_ps(), acc[q] = _mm512_setzero_ps(), vi[q] = _mm512_loadu_ps(v + 16 * q);
  auto fetch = [next](int64_t at) {
    _mm_prefetch(reinterpret_cast<const char*>(next + at), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(next + at + 16), _MM_HINT_T1);
  };
  for (int j = 0; j < 64; j++) {  // sa_i -= S(i, j) kk[j]
    const __m512 kkj = _mm512_set1_ps(kk[j]);
    if (next) fetch(j * 32);
    for (int q = 0; q < 4; q++) sa[q] = _mm512_sub_ps(sa[q], _mm512_mul_ps(_mm512_loadu_ps(S + j * 64 + 16 * q), kkj));
  }
  for (int j = 0; j < 64; j++) {  // S(i, j) = fma(v_i, k_j, fma(S(i, j), decay_j, sa_i b_j)); y_i += S(i, j) r_j
    const float bj = kk[j] * a[j];
    const __m512 b = _mm512_set1_ps(bj), d = _mm512_set1_ps(decay[j]), kj = _mm512_set1_ps(k[j]),
                 rj = _mm512_set1_ps(r[j]);
    if (next) fetch(2048 + j * 32);
    float* t = S + j * 64;
    for (int q = 0; q < 4; q++) {
      __m512 s = _mm512_mul_ps(sa[q], b);
      s = _mm512_fmadd_ps(_mm512_loadu_ps(t + 16 * q), d, s);
      s = _mm512_fmadd_ps(vi[q], kj, s);
      _mm512_storeu_ps(t + 16 * q, s);
      acc[q] = _mm512_add_ps(acc[q], _mm512_mul_ps(s, rj));
    }
  }
  for (int q = 0; q < 4; q++) _mm512_storeu_ps(y + 16 * q, acc[q]);
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
