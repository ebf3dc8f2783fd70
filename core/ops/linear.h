#pragma once
// The shared products: the step's y = W x / x P products and the update GEMM.
// CPU reference ops (namespace eggroll::ref): the definition of what every backend computes.
// The CUDA kernels of the same group live in cuda/linear.cu under the same names; the op table
// (tests/test_backend_ops.cpp) runs both against these. docs/architecture.md lists the groups.
//
// Conventions: row-major arrays; B rows ("batch", one per generation); C = n_embd; H heads of
// 64. A per-row vector parameter is (pointer, stride): row i reads p + i * stride (stride 0 =
// shared by all rows, stride n = one perturbed copy per row). State arrays hold one slot per
// member: member `slot` of layer l starts at base + slot * slot_stride + layer_offset.
#include <cstddef>
#include <cstdint>


namespace eggroll {

// bf16 rounding of an fp32 value (round to nearest even), as the device's __float2bfloat16_rn.
float round_to_bf16(float x);

namespace ref {

// Y[B, out] = X[B, in] W^T, W [out, in] (y = W x) or, x_times_p, Y = X P, P [in, out].
// fp32 weights: core/gemm.h. bf16 weights: X is rounded to bf16 (the device GEMM takes bf16 x
// bf16 with fp32 accumulation), then the products summed as core/gemm_bf16.h defines (k in
// pairs, odd element first, blocks of kGemmKC, subnormals flushed): the order of the CPU's
// vdpbf16ps, written out one fma at a time.
void linear_f32(const float* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out);
void linear_bf16(const uint16_t* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out);

// G[m, n] = A_all[m, K] B_all[n, K]^T (the update GEMM, fp32).
void update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K);

}  // namespace ref
}  // namespace eggroll
