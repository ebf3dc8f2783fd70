#pragma once
// Token sampling from logits: greedy, temperature, top-k, top-p. Random draws come from a
// counter-based hash of (seed, draw index), so a member's samples are reproducible whatever
// else runs in the same batch.
#include <cstdint>
#include <span>

#include "rwkv/sample_rng.h"  // uniform01

namespace eggroll {

struct SamplingParams {
  float temperature = 0.f;  // 0 = greedy (argmax; lowest id wins ties)
  int top_k = 0;            // 0 = off
  float top_p = 1.f;        // 1 = off
};


// Picks a token from logits[V]; draw `counter` of the stream `seed`.
int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t seed, uint64_t counter);

}  // namespace eggroll
