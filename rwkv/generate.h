#pragma once
// Batched generation: every request is prefilled and decoded in one batch; a request that
// stops (end-of-document token 0, a stop string, or max tokens) leaves the batch.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rwkv/forward.h"
#include "rwkv/sampler.h"
#include "rwkv/tokenizer.h"

namespace eggroll {

struct GenOptions {
  int max_tokens = 64;
  SamplingParams sampling;
  bool stop_on_eod = true;                // token 0 ends a request
  std::vector<std::string> stop_strings;  // matched on decoded bytes (needs a tokenizer)
  const Tokenizer* tokenizer = nullptr;
};

struct GenRequest {
  std::vector<int32_t> prompt;  // at least one token
  uint64_t seed = 0;            // sampling stream of this request
  int member = 0;               // population member (with a perturbation)
};

struct GenResult {
  std::vector<int32_t> tokens;  // generated ids (the stopping token 0 included)
  std::string text;             // decoded completion, cut before a stop string (empty without tokenizer)
  std::string stop_reason;      // "eod", "stop" or "length"
};

struct GenStats {
  uint64_t prompt_tokens = 0, generated_tokens = 0, steps = 0;
  double seconds = 0;
};

std::vector<GenResult> generate(Forward& fwd, std::span<const GenRequest> requests, const GenOptions& opt,
                                Perturbation* pert = nullptr, GenStats* stats = nullptr);

}  // namespace eggroll
