#include "core/ops/linear.h"

#include <vector>
#include "core/dtype.h"
#include "core/gemm.h"

namespace eggroll {

float round_to_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

namespace ref {

void linear_f32(const float* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out) {
  if (x_times_p) gemm_xp(X, W, Y, B, in, out);
  else gemm_xwt(X, W, Y, B, in, out);
}

void linear_bf16(const uint16_t* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out) {
  std::vector<float> w(static_cast<size_t>(in * out)), x(static_cast<size_t>(B * in));
  for (size_t j = 0; j < w.size(); j++) w[j] = bf16_to_f32(W[j]);
  for (size_t j = 0; j < x.size(); j++) x[j] = round_to_bf16(X[j]);
  linear_f32(w.data(), x_times_p, x.data(), Y, B, in, out);
}

void update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) {
  linear_f32(B_all, false, A_all, G, m, K, n);
}

}  // namespace ref
}  // namespace eggroll
