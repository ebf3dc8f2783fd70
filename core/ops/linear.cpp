#include "core/ops/linear.h"

#include <algorithm>
#include <cmath>
#include <vector>
#include "core/dtype.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"

namespace eggroll {

float round_to_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

namespace ref {

void linear_f32(const float* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out) {
  if (x_times_p) gemm_xp(X, W, Y, B, in, out);
  else gemm_xwt(X, W, Y, B, in, out);
}

void linear_bf16(const uint16_t* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out) {
  // w(k, o): element k of output o's row
  auto w = [&](int64_t k, int64_t o) {
    return k >= in ? 0.f : bf16_dot_flush(bf16_to_f32(x_times_p ? W[k * out + o] : W[o * in + k]));
  };
  std::vector<float> x(size_t(in + 1));
  for (int64_t r = 0; r < B; r++) {
    for (int64_t k = 0; k < in; k++) x[size_t(k)] = bf16_dot_flush(round_to_bf16(X[r * in + k]));
    x[size_t(in)] = 0.f;  // the zero padding of an odd last pair
    for (int64_t o = 0; o < out; o++) {
      float y = 0.f;
      for (int64_t k0 = 0; k0 < in; k0 += kGemmKC) {
        float acc = 0.f;
        for (int64_t k = k0; k < std::min(in, k0 + kGemmKC); k += 2) {
          acc = bf16_dot_flush(std::fma(x[size_t(k + 1)], w(k + 1, o), acc));
          acc = bf16_dot_flush(std::fma(x[size_t(k)], w(k, o), acc));
        }
        y = k0 == 0 ? acc : y + acc;
      }
      Y[r * out + o] = y;
    }
  }
}

void update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) {
  linear_f32(B_all, false, A_all, G, m, K, n);
}

}  // namespace ref
}  // namespace eggroll
