#pragma once
// Token sampling from logits (the sample op: its CUDA kernels are cuda/sample.cu): greedy, temperature, top-k, top-p. Random draws come from a
// counter-based hash of (seed, draw index), so a member's samples are reproducible whatever
// else runs in the same batch.
#include <cstdint>
#include <span>

#include "core/sample_rng.h"  // uniform01

namespace eggroll {

struct SamplingParams {
  float temperature = 0.f;  // 0 = greedy (argmax; lowest id wins ties)
  int top_k = 0;            // 0 = off
  float top_p = 1.f;        // 1 = off
};


// Picks a token from logits[V]; draw `counter` of the stream `seed`.
int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t seed, uint64_t counter);


namespace ref {
// The index of the first largest value of x[V], NaN ignored; 0 when no value exceeds -inf.
int32_t argmax_row(const float* x, int64_t V);
// Greedy argmax of each row (lowest id on ties; NaN ignored; an all-NaN row gives 0).
void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* out);
// core/ops/sample.h sample_token on each row with (seeds[i], counters[i]).
void sample_rows(const float* logits, int64_t rows, int64_t V, float temperature, int top_k, float top_p,
                 const uint64_t* seeds, const uint64_t* counters, int32_t* out);
}  // namespace ref

}  // namespace eggroll
