#pragma once
// Batch-invariant fp32 GEMM for the CPU backend. Every output element is accumulated in the
// same order whatever the number of rows, the row's position in the batch or the thread
// count: k is split into fixed blocks of kGemmKC, each block is summed sequentially (one
// fused multiply-add per k) and the block sums are added to the output in k order. So a
// population member gets bit-identical results alone or in any batch, on any rank.
#include <cstdint>
#include <vector>

namespace eggroll {

inline constexpr int64_t kGemmKC = 256;

// Y[rows, out] = X[rows, in] * W^T, W [out, in] row-major (y = W x per row).
void gemm_xwt(const float* X, const float* W, float* Y, int64_t rows, int64_t in, int64_t out);
// Y[rows, out] = X[rows, in] * P, P [in, out] row-major (y = x @ P per row).
void gemm_xp(const float* X, const float* P, float* Y, int64_t rows, int64_t in, int64_t out);

// W [out, in] rearranged once into the panels gemm_xwt otherwise transposes on every call
// (for each 64-wide tile of outputs: [in][64], zero-padded). gemm_packed gives results
// bit-identical to gemm_xwt on the same W, without the per-call packing.
struct PackedWeights {
  int64_t in = 0, out = 0;
  std::vector<float> data;
  bool empty() const { return data.empty(); }
};
PackedWeights pack_weights(const float* W, int64_t in, int64_t out);
void gemm_packed(const float* X, const PackedWeights& W, float* Y, int64_t rows);

}  // namespace eggroll
