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
  float b[64];
  for (int j = 0; j < 64; j++) b[j] = kk[j] * a[j];
  for (int i = 0; i < 64; i++) {
    float* Si = S + i * 64;
    float sa = 0.f;
    for (int j = 0; j < 64; j++) sa -= Si[j] * kk[j];
    const float vi = v[i];
    float acc = 0.f;
    for (int j = 0; j < 64; j++) {
      const float s = std::fma(vi, k[j], std::fma(Si[j], decay[j], sa * b[j]));
      Si[j] = s;
      acc += s * r[j];
    }
    y[i] = acc;
  }
}

}  // namespace ref
}  // namespace eggroll
