#pragma once
// The WKV-7 recurrence (the state update and readout of every head).
// CPU reference ops (namespace eggroll::ref): the definition of what every backend computes.
// The CUDA kernels of the same group live in cuda/wkv7.cu under the same names; the op table
// (tests/test_backend_ops.cpp) runs both against these. docs/architecture.md lists the groups.
//
// Conventions: row-major arrays; B rows ("batch", one per generation); C = n_embd; H heads of
// 64. A per-row vector parameter is (pointer, stride): row i reads p + i * stride (stride 0 =
// shared by all rows, stride n = one perturbed copy per row). State arrays hold one slot per
// member: member `slot` of layer l starts at base + slot * slot_stride + layer_offset.
#include <cstddef>
#include <cstdint>


namespace eggroll {
namespace ref {

// Floats in one head's state [64][64], stored transposed: element (i, j) of the equations (i the
// value index, j the key index) at j * 64 + i, so a key index's 64 values are contiguous.
constexpr int64_t kWkvHeadState = 64 * 64;
}  // namespace ref
using ref::kWkvHeadState;
namespace ref {

// WKV-7 for every (row, head): state of row i = state + slots[i] * slot_stride + layer_offset, [H][64][64].
void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H);
// One WKV-7 head update for one member: S [64 (j)][64 (i)], S(i, j) at S[j * 64 + i]; all vectors [64].
// Per value index i: sa = -sum_j S(i, j) kk[j] (in j order, product and sum rounded apart);
// S(i, j) = fma(v[i], k[j], fma(S(i, j), decay[j], sa * (kk[j] a[j]))); y[i] = sum_j S(i, j) r[j]
// (in j order, product and sum rounded apart).
void wkv7_head(float* S, const float* r, const float* decay, const float* k, const float* v, const float* kk,
               const float* a, float* y);

}  // namespace ref

// The CPU backend's WKV-7 (core/wkv7_simd.cpp): AVX-512F, 16 value indices per vector, the same bits
// as ref::wkv7_rows, when the CPU has AVX-512F and EGGROLL_WKV_SIMD is not 0; otherwise the reference.
void wkv7_rows_cpu(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
                   const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
                   int64_t B, int64_t H);
bool wkv7_simd_active();
}  // namespace eggroll
