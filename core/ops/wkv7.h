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

// Floats in one head's state [64][64].
constexpr int64_t kWkvHeadState = 64 * 64;
}  // namespace ref
using ref::kWkvHeadState;
namespace ref {

// WKV-7 for every (row, head): state of row i = state + slots[i] * slot_stride + layer_offset, [H][64][64].
void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H);
// One WKV-7 head update for one member: S [64][64] (row = value index), all vectors [64].
void wkv7_head(float* S, const float* r, const float* decay, const float* k, const float* v, const float* kk,
               const float* a, float* y);

}  // namespace ref
}  // namespace eggroll
