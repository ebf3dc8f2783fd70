#pragma once
// Batched generation: every request is prefilled and decoded in one batch; a request that
// stops (end-of-document token 0, a stop string, or max tokens) leaves the batch.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rwkv/forward.h"
#include "core/ops/sample.h"
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

// The rows of one batched decode step, as generate() hands them to the Decoder.
struct DecodeRows {
  std::span<const int32_t> tokens;  // input token of each row
  std::span<const int> slots;       // state slot of each row (= request index)
  std::span<const int> members;     // population member of each row
  std::span<const uint8_t> need;    // rows whose next token is sampled (prompt done)
  // for the rows with need, in row order: the sampling stream and the draw index
  std::span<const uint64_t> seeds, counters;
};

// The decoder: one batched step of a model plus sampling on any backend (core/backend.h), driven by
// generate() below, which owns everything else (the prompt feed, stop rules, the active batch),
// so every backend decodes by the same rules. Per step: one upload of the step's rows, the step
// (ModelStep, with an optional perturbation in the backend's memory), sampling on the backend, one
// download of the sampled tokens (the only host synchronisation per generated token).
class Decoder {
 public:
  // max_rows: the most rows a step will carry (and the most slots reset() will be asked for).
  Decoder(Backend& be, const ModelWeights& w, int64_t max_rows);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
  // The perturbation of the following steps (nullptr: none); backend memory.
  void set_perturbation(const PerturbationView* p) { pert_ = p; }

  // Fresh zero states for `slots` requests.
  void reset(int slots);
  // Feeds the rows' tokens; writes the sampled token of the k-th row with need to sampled[k].
  void step(const DecodeRows& rows, const SamplingParams& sp, std::span<int32_t> sampled);
  // The timed mode of the benchmarks: `steps` greedy steps of rows 0..B-1 (B = first.size(); row
  // i is slot i and member i; call reset(B) first), starting from the tokens `first`; each step's
  // argmax, taken on the backend, is the next step's input. The host does not wait for the backend
  // between steps, only once at the end. Returns the last step's tokens; logits() then holds the
  // last step's logits [B, V] (backend memory).
  std::vector<int32_t> greedy_steps(std::span<const int32_t> first, int steps);
  const float* logits() const { return logits_; }
  // A step without sampling for teacher forcing: for the rows with rows.need (in row order),
  // logprob[k] = log softmax(logits)[next[k]], in double (the rows' logits are downloaded).
  void step_logprobs(const DecodeRows& rows, std::span<const int32_t> next, std::span<double> logprob);

 private:
  // Validates the rows and uploads their tokens, slots, members and the indices of the n rows
  // that need an output (the io block's int32 part).
  void upload_rows(const DecodeRows& rows, int64_t n, const char* what);
  Backend& be_;
  const ModelWeights& w_;
  int64_t max_rows_;
  ModelStep op_;
  const PerturbationView* pert_ = nullptr;
  BackendBuffers buffers_;  // logits and io
  BackendBuffers states_;   // the state arrays (replaced when more slots are needed)
  StateView st_{};
  int64_t slots_cap_ = 0;
  float* logits_ = nullptr;
  void* io_ = nullptr;        // backend: int32 tokens|slots|members|logit_rows|sampled, then uint64 seeds|counters
  std::vector<uint8_t> host_;  // the same layout on the host
  std::vector<float> logits_host_;  // step_logprobs: the scored rows' logits
};

// Teacher-forced log-likelihood (no sampling, no decode loop): each request feeds prompt then
// target through the recurrent step, and sums log p(target[t] | prompt, target[<t]).
// chunk_tokens > 0 splits each target into sub-sequences of that many tokens, fed in successive
// passes over the batch (the first with the prompt), the recurrent state carried from one to the
// next: the sums equal the unchunked ones (tests/test_population_engine.cpp). 0: one pass.
struct ScoreRequest {
  std::vector<int32_t> prompt;  // at least one token
  std::vector<int32_t> target;  // the scored tokens
  int member = 0;               // population member (with a perturbation)
};
struct ScoreResult {
  double logprob = 0;  // summed over the target tokens
  int64_t tokens = 0;  // target tokens scored
};
std::vector<ScoreResult> score_targets(Decoder& decoder, std::span<const ScoreRequest> requests,
                                       GenStats* stats = nullptr, int64_t chunk_tokens = 0);

std::vector<GenResult> generate(Decoder& decoder, std::span<const GenRequest> requests, const GenOptions& opt,
                                GenStats* stats = nullptr);
// generate() on the CPU forward's backend and (packed) weights.
std::vector<GenResult> generate(Forward& fwd, std::span<const GenRequest> requests, const GenOptions& opt,
                                const PerturbationView* pert = nullptr, GenStats* stats = nullptr);

}  // namespace eggroll
