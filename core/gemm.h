#pragma once
// Batch-invariant fp32 GEMM for the CPU backend. Every output element is accumulated in the
// same order whatever the number of rows, the row's position in the batch or the thread
// count: k is split into fixed blocks of kGemmKC, each block is summed sequentially (one
// fused multiply-add per k) and the block sums are added to the output in k order. So a
// population member gets bit-identical results alone or in any batch, on any rank.
#include <cstdint>

namespace eggroll {

inline constexpr int64_t kGemmKC = 256;

// Y[rows, out] = X[rows, in] * W^T, W [out, in] row-major (y = W x per row).
void gemm_xwt(const float* X, const float* W, float* Y, int64_t rows, int64_t in, int64_t out);
// Y[rows, out] = X[rows, in] * P, P [in, out] row-major (y = x @ P per row).
void gemm_xp(const float* X, const float* P, float* Y, int64_t rows, int64_t in, int64_t out);

}  // namespace eggroll
