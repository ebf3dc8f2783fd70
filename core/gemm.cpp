#include "core/gemm.h"
#include "core/parallel.h"

#include <algorithm>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace eggroll {

namespace {

constexpr int64_t MR = 6;   // rows per micro-tile
constexpr int64_t NR = 64;  // outputs per micro-tile (4 AVX-512 vectors)

#if defined(__AVX512F__)
// Y[R, nr] (+)= X[R, kc] * Bk[kc, nr]; Bk rows are ldb apart (nr < 64: masked loads, so a panel
// read in place never reads past its end). first: assign instead of add. R is a compile-time
// row count so that the accumulators stay in registers for every batch remainder.
template <int R>
void micro_tile(const float* X, int64_t ldx, const float* Bk, int64_t ldb, float* Y, int64_t ldy, int64_t nr,
                int64_t kc, bool first) {
  __m512 acc[R][4];
  __mmask16 mask[4];
  for (int v = 0; v < 4; v++) {
    const int64_t left = nr - 16 * v;
    mask[v] = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
  if (nr == NR) {
    for (int64_t k = 0; k < kc; k++) {
      const float* b = Bk + k * ldb;
      const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
                   b3 = _mm512_loadu_ps(b + 48);
      for (int r = 0; r < R; r++) {
        const __m512 x = _mm512_set1_ps(X[r * ldx + k]);
        acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
        acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
        acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
      }
    }
  } else {
    for (int64_t k = 0; k < kc; k++) {
      const float* b = Bk + k * ldb;
      __m512 bv[4];
      for (int v = 0; v < 4; v++) bv[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
      for (int r = 0; r < R; r++) {
        const __m512 x = _mm512_set1_ps(X[r * ldx + k]);
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < 4; v++) {
      if (!mask[v]) continue;
      float* y = Y + r * ldy + 16 * v;
      __m512 out = first ? acc[r][v] : _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], y), acc[r][v]);
      _mm512_mask_storeu_ps(y, mask[v], out);
    }
}
#endif

// Y[mr, nr] (+)= X[mr, kc] * Bk[kc, nr]; Bk rows are ldb apart. first: assign instead of add.
void micro_kernel(const float* X, int64_t ldx, const float* Bk, int64_t ldb, float* Y, int64_t ldy, int64_t mr,
                  int64_t nr, int64_t kc, bool first) {
#if defined(__AVX512F__)
  switch (mr) {
    case 6: return micro_tile<6>(X, ldx, Bk, ldb, Y, ldy, nr, kc, first);
    case 5: return micro_tile<5>(X, ldx, Bk, ldb, Y, ldy, nr, kc, first);
    case 4: return micro_tile<4>(X, ldx, Bk, ldb, Y, ldy, nr, kc, first);
    case 3: return micro_tile<3>(X, ldx, Bk, ldb, Y, ldy, nr, kc, first);
    case 2: return micro_tile<2>(X, ldx, Bk, ldb, Y, ldy, nr, kc, first);
    default: return micro_tile<1>(X, ldx, Bk, ldb, Y, ldy, nr, kc, first);
  }
#else
  for (int64_t r = 0; r < mr; r++)
    for (int64_t j = 0; j < nr; j++) {
      float acc = 0.f;
      for (int64_t k = 0; k < kc; k++) acc = __builtin_fmaf(X[r * ldx + k], Bk[k * ldb + j], acc);
      Y[r * ldy + j] = first ? acc : Y[r * ldy + j] + acc;
    }
#endif
}

// Shared driver: for each NR-wide output tile (threads split the tiles), for each k block in
// order, get the [kc, nr] panel of the right-hand side and run the micro-tiles over all rows.
template <class Panel>
void gemm_driver(const float* X, float* Y, int64_t rows, int64_t in, int64_t out, Panel panel) {
  const int64_t tiles = (out + NR - 1) / NR;
  if (rows <= 0 || out <= 0) return;
  if (in == 0) {
    std::fill_n(Y, rows * out, 0.f);
    return;
  }
  // one output tile per chunk, claimed dynamically by the pool's threads (core/parallel.h)
  parallel_for(tiles, 1, [&](int64_t t) {
    thread_local std::vector<float> pack;
    {
      const int64_t o0 = t * NR, nr = std::min(NR, out - o0);
      for (int64_t k0 = 0; k0 < in; k0 += kGemmKC) {
        const int64_t kc = std::min(kGemmKC, in - k0);
        int64_t ldb = 0;
        const float* B = panel(o0, nr, k0, kc, pack, ldb);
        for (int64_t r0 = 0; r0 < rows; r0 += MR)
          micro_kernel(X + r0 * in + k0, in, B, ldb, Y + r0 * out + o0, out, std::min(MR, rows - r0), nr, kc,
                       k0 == 0);
      }
    }
  });
}

}  // namespace

void gemm_xwt(const float* X, const float* W, float* Y, int64_t rows, int64_t in, int64_t out) {
  gemm_driver(X, Y, rows, in, out,
              [&](int64_t o0, int64_t nr, int64_t k0, int64_t kc, std::vector<float>& pack, int64_t& ldb) {
                // transpose W[o0:o0+nr, k0:k0+kc] into pack[kc][NR]
                pack.resize(size_t(kGemmKC * NR));
                for (int64_t j = 0; j < nr; j++) {
                  const float* w = W + (o0 + j) * in + k0;
                  for (int64_t k = 0; k < kc; k++) pack[size_t(k * NR + j)] = w[k];
                }
                ldb = NR;
                return static_cast<const float*>(pack.data());
              });
}

void gemm_xp(const float* X, const float* P, float* Y, int64_t rows, int64_t in, int64_t out) {
  gemm_driver(X, Y, rows, in, out,
              [&](int64_t o0, int64_t, int64_t k0, int64_t, std::vector<float>&, int64_t& ldb) {
                ldb = out;
                return P + k0 * out + o0;
              });
}

PackedWeights pack_weights(const float* W, int64_t in, int64_t out) {
  PackedWeights p;
  p.in = in, p.out = out;
  const int64_t tiles = (out + NR - 1) / NR;
  p.data.assign(size_t(tiles * in * NR), 0.f);
  parallel_for(tiles, 1, [&](int64_t t) {
    const int64_t nr = std::min(NR, out - t * NR);
    float* dst = p.data.data() + t * in * NR;
    for (int64_t j = 0; j < nr; j++) {
      const float* w = W + (t * NR + j) * in;
      for (int64_t k = 0; k < in; k++) dst[k * NR + j] = w[k];
    }
  });
  return p;
}

void gemm_packed(const float* X, const PackedWeights& W, float* Y, int64_t rows) {
  const int64_t in = W.in;
  gemm_driver(X, Y, rows, in, W.out,
              [&](int64_t o0, int64_t, int64_t k0, int64_t, std::vector<float>&, int64_t& ldb) {
                ldb = NR;
                return W.data.data() + ((o0 / NR) * in + k0) * NR;
              });
}

}  // namespace eggroll
