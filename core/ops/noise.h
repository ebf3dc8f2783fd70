#pragma once
// EGGROLL noise ops: low-rank corrections, vector noise, the per-step noise cache, raw Philox.
// CPU reference ops (namespace eggroll::ref): the definition of what every backend computes.
// The CUDA kernels of the same group live in cuda/noise.cu under the same names; the op table
// (tests/test_backend_ops.cpp) runs both against these. docs/architecture.md lists the groups.
//
// Conventions: row-major arrays; B rows ("batch", one per generation); C = n_embd; H heads of
// 64. A per-row vector parameter is (pointer, stride): row i reads p + i * stride (stride 0 =
// shared by all rows, stride n = one perturbed copy per row). State arrays hold one slot per
// member: member `slot` of layer l starts at base + slot * slot_stride + layer_offset.
#include <cstddef>
#include <cstdint>
#include <vector>
#include "core/noise.h"

namespace eggroll {
namespace ref {

// The factors [A (m x r) | B (n x r)] of param `pid` for member `member` come from
// `cache + (member / 2) * (m + n) r` when cache != nullptr, else are generated (noise_element).
// Low-rank correction of a perturbed product, per row i (member members[i]):
//   y = W x:   Y[i] += (s sigma / sqrt r) A (B^T x)       (x_times_p = false; W is [m = out, n = in])
//   y = x P:   Y[i] += (s sigma / sqrt r) (x A) B^T       (x_times_p = true;  P is [m = in, n = out])
void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X,
                 float* Y, const int32_t* members, int64_t B, const float* cache);
// One row of it: t = c * (In^T x) (In [in, r]), then y += Out t (Out [out, r]); t holds r floats.
// The sums over `in` run in 16 interleaved partial sums (explicit fmas) added in a fixed order, and
// y += Out t as fmas (r = 1) or an r-term fma chain added to y, so a row's result depends only on
// the row (batch-invariant), whatever the compiler contracts, and the loops vectorize.
void lowrank_correct_row(const float* x, int64_t in, const float* In, const float* Out, int64_t out, int r, float c,
                         float* y, float* t);
// lowrank_correct_row (r = 1) of the two rows of an antithetic pair, which share In and Out: rows
// x[0, in) and x[in, 2 in) with scales c0 and c1 into y[0, out) and y[out, 2 out); each row's
// bits are lowrank_correct_row's, the factors are read once.
void lowrank_correct_pair(const float* x, int64_t in, const float* In, const float* Out, int64_t out, float c0,
                          float c1, float* y);
// Runs of consecutive rows whose members are of one pair (an antithetic pair's rows usually sit
// next to each other): how many factor arrays lowrank_rank1_terms generates without a cache.
int64_t lowrank_pair_runs(const int32_t* members, int64_t B);
// lowrank_add of rank 1 in two parts, for a product that adds the correction as it finishes each
// output (core/gemm_bf16.h, Bf16Product's rank-1 epilogue): for every row i, t[i] = c_i (In_i . x_i)
// summed as lowrank_correct_row sums it, and out[i] -> row i's Out factor (out floats: in `cache`,
// or generated into `scratch`, grown as needed, once per run of consecutive rows of one pair).
// y[i][o] = fma(out[i][o], t[i], y[i][o]) then gives lowrank_add's bits. ns.rank must be 1.
void lowrank_rank1_terms(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X,
                         const int32_t* members, int64_t B, const float* cache, std::vector<float>& scratch,
                         const float** out, float* t);
// Embedding perturbation (emb [V = m, C = n]): X[i] += (s sigma / sqrt r) B A[tokens[i]]^T.
void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* tokens,
                           float* X, const int32_t* members, int64_t B, const float* cache);
// Full-rank vector noise: out[i, :] = base + s_i sigma eps_i (eps of length n).
void vector_noise_rows(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* members,
                       int64_t B, const float* cache, float* out);
// The per-step cache of one parameter: out[pair][j] = noise element j of pair (len elements each).
void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out);
// Philox raw blocks for a list of (counter, key): out[4i..4i+3] = philox4x32_10(ctr[4i..], key[2i..]).
void philox_blocks(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out);

}  // namespace ref
}  // namespace eggroll
