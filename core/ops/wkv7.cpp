// Compiled with -ffp-contract=off (CMakeLists.txt): every product and sum below is the rounding
// written, and the two fused steps are explicit std::fma, so the bits do not depend on how the
// compiler vectorises or contracts. The AVX-512 kernel (core/wkv7_simd.cpp) does the same
// operations in the same order.
#include "core/ops/wkv7.h"

#include <cmath>

#include "core/parallel.h"

namespace eggroll {
namespace ref {

void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H) {
  const int64_t C = H * 64;
  // one head (64 x 64 state) per chunk
  parallel_for(B * H, 1, [&](int64_t ih) {
    const int64_t i = ih / H, h = ih % H;
    const int64_t o = i * C + h * 64;
    float* S = state + int64_t(slots[i]) * slot_stride + layer_offset + h * kWkvHeadState;
    wkv7_head(S, r + o, decay + o, k + o, v + o, kk + o, a + o, y + o);
  });
}

void wkv7_head(float* S, const float* r, const float* decay, const float* k, const float* v, const float* kk,
               const float* a, float* y) {
  // S[j * 64 + i]: row j (key index), column i (value index). The loops run over j outside and i
  // inside, so each value index i still sums its terms in j order, and the inner loops are
  // contiguous.
  float b[64], sa[64], acc[64];
  for (int j = 0; j < 64; j++) b[j] = kk[j] * a[j];
  for (int i = 0; i < 64; i++) sa[i] = 0.f, acc[i] = 0.f;
  for (int j = 0; j < 64; j++) {
    const float* Sj = S + j * 64;
    for (int i = 0; i < 64; i++) sa[i] -= Sj[i] * kk[j];
  }
  for (int j = 0; j < 64; j++) {
    float* Sj = S + j * 64;
    for (int i = 0; i < 64; i++) {
      const float s = std::fma(v[i], k[j], std::fma(Sj[i], decay[j], sa[i] * b[j]));
      Sj[i] = s;
      acc[i] += s * r[j];
    }
  }
  for (int i = 0; i < 64; i++) y[i] = acc[i];
}

}  // namespace ref
}  // namespace eggroll
