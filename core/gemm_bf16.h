#pragma once
// bf16 products for the CPU backend: matrices stored once, as bf16 panels; inputs rounded to
// bf16 (round to nearest even); products accumulated in fp32.
//
// Definition (what every kernel here computes, bit for bit; ref::linear_bf16 in
// core/ops/linear.h is its scalar reference): k runs in pairs (2p, 2p+1), the last pair of an
// odd `in` padded with zeros; for each output, in each block of kGemmKC consecutive k,
//   acc = 0;  for each pair:  acc = fma(x[2p+1], w[2p+1], acc);  acc = fma(x[2p], w[2p], acc)
// (the products of two bf16 values are exact in fp32; bf16 subnormal inputs and subnormal
// results of each fma count as zero), and y = block 0's acc, then y += acc of each later block
// in k order. That is the order of the AVX512-BF16 instruction vdpbf16ps (checked on the
// hardware by tests/test_gemm.cpp), so the vector kernel and the scalar one agree exactly, and a
// row's result never depends on the other rows, the batch size or the thread count (batch
// invariance, as for the fp32 GEMM in core/gemm.h).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace eggroll {

// A bf16 subnormal input or an fp32 subnormal fma result counts as zero, sign kept (the
// instruction's DAZ/FTZ; part of the definition above).
inline float bf16_dot_flush(float v) {
  return std::fabs(v) < std::numeric_limits<float>::min() ? std::copysign(0.f, v) : v;
}

// The kernels: chosen at run time from the CPU's features (best_bf16_kernel()).
enum class Bf16Kernel : uint8_t {
  Scalar,      // portable: one fma at a time, flushing subnormals as the instruction does
  Avx512Bf16,  // vdpbf16ps (AVX512-BF16: Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and later)
  Amx,         // AMX-BF16 tiles (tdpbf16ps: Intel Sapphire Rapids and later), 16 rows at a time. NOT the
               // definition above bit for bit (the tiles round their running sums their own way, as
               // close to the float64 product); a row's result still does not depend on the batch
};
const char* bf16_kernel_name(Bf16Kernel k);
bool bf16_kernel_supported(Bf16Kernel k);
// The kernel the products use: the fastest this CPU offers (amx, else avx512bf16, else scalar).
// EGGROLL_BF16_KERNEL=exact picks the fastest kernel that computes the definition bit for bit
// (avx512bf16, else scalar: what the op table and the bit-exact tests run), =scalar|avx512bf16|amx
// one kernel by name. Read once per process.
Bf16Kernel best_bf16_kernel();
Bf16Kernel best_exact_bf16_kernel();
// Whether the CPU has bf16 dot-product instructions (then bf16 matrices are the CPU default).
bool cpu_has_bf16_dot();

// A matrix as bf16 panels: for each 64-wide tile of outputs, for each k pair p, the 64 outputs'
// (w[2p], w[2p+1]) interleaved: data[((tile * pairs + p) * 64 + j) * 2 + e], zero-padded.
struct PackedBf16 {
  int64_t in = 0, out = 0, pairs = 0;
  std::vector<uint16_t> data;
  size_t bytes() const { return data.size() * 2; }
};
// The source of a packing: bf16 bits or fp32 values (rounded to nearest even), laid out as
// W [out, in] (y = W x) or, x_times_p, P [in, out] (y = x P).
PackedBf16 pack_bf16(const uint16_t* bits, int64_t in, int64_t out, bool x_times_p);
PackedBf16 pack_bf16(const float* values, int64_t in, int64_t out, bool x_times_p);
// Rewrites an existing packing of the same shape in place, from new bf16 bits or fp32 values.
void repack_bf16(PackedBf16& p, const uint16_t* bits, bool x_times_p);
void repack_bf16(PackedBf16& p, const float* values, bool x_times_p);

// Y[rows, out] = bf16(X)[rows, in] times the packed matrix, fp32 accumulation (definition above).
void gemm_bf16(const float* X, const PackedBf16& W, float* Y, int64_t rows, Bf16Kernel k);
inline void gemm_bf16(const float* X, const PackedBf16& W, float* Y, int64_t rows) {
  gemm_bf16(X, W, Y, rows, best_bf16_kernel());
}
// x [in] fp32 -> bf16 pairs out [(in + 1) / 2] (uint32: low half x[2p], high half x[2p + 1], the
// last pair of an odd `in` padded with zero), each value f32_to_bf16 (core/dtype.h): how a
// product's inputs are rounded. AVX-512F when the CPU has it, the same bits.
void bf16_round_pairs(const float* x, int64_t in, uint32_t* out);

// Several independent products of the same rows in one pass over the threads (no product's Y is
// another's X): each Y gets the bits gemm_bf16 gives it alone.
// A product may carry a rank-1 epilogue (EGGROLL's low-rank correction, core/ops/noise.h): with
// rank1_out set, each finished output becomes y[r][o] = fma(rank1_out[r][o], rank1_t[r], y[r][o])
// -- the bits of gemm_bf16 followed by that fma in a pass of its own, applied while the output
// tile is still in registers (or, for AMX, in L1) instead of reading Y back from memory.
struct Bf16Product {
  const float* X;
  const PackedBf16* W;
  float* Y;
  const float* const* rank1_out = nullptr;  // [rows] pointers to W->out floats each
  const float* rank1_t = nullptr;           // [rows]
};
void gemm_bf16_group(const Bf16Product* items, int n, int64_t rows, Bf16Kernel k);

}  // namespace eggroll
