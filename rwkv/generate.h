#pragma once
// Batched generation: every request is prefilled and decoded in one batch; a request that
// stops (end-of-document token 0, a stop string, or max tokens) leaves the batch.
#include <cstdint>
#include <memory>
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

// The rows of one batched decode step, as generate() hands them to a DecodeStepper.
struct DecodeRows {
  std::span<const int32_t> tokens;  // input token of each row
  std::span<const int> slots;       // state slot of each row (= request index)
  std::span<const int> members;     // population member of each row
  std::span<const uint8_t> need;    // rows whose next token is sampled (prompt done)
  // for the rows with need, in row order: the sampling stream and the draw index
  std::span<const uint64_t> seeds, counters;
};

// One batched step of a model plus sampling: the part of generation that runs on a backend.
// generate() below owns everything else (the prompt feed, stop rules, the active batch), so every
// backend decodes by the same rules.
class DecodeStepper {
 public:
  virtual ~DecodeStepper() = default;
  // Fresh zero states for `slots` requests.
  virtual void reset(int slots) = 0;
  // Feeds the rows' tokens; writes the sampled token of the k-th row with need to sampled[k].
  virtual void step(const DecodeRows& rows, const SamplingParams& sp, std::span<int32_t> sampled) = 0;
};

// generate()'s stepper on any backend (es/step_ops.h): one upload of the step's rows, the step
// (OpStep, with an optional perturbation in the backend's memory), sampling on the backend, one
// download of the sampled tokens (the only host synchronisation per generated token).
class OpsStepper final : public DecodeStepper {
 public:
  // max_rows: the most rows a step will carry (and the most slots reset() will be asked for).
  OpsStepper(StepBackend& be, const StepWeights& w, int64_t max_rows);
  OpsStepper(const OpsStepper&) = delete;
  OpsStepper& operator=(const OpsStepper&) = delete;
  // The perturbation of the following steps (nullptr: none); backend memory.
  void set_perturbation(const StepPerturbation* p) { pert_ = p; }

  void reset(int slots) override;
  void step(const DecodeRows& rows, const SamplingParams& sp, std::span<int32_t> sampled) override;
  // A step without sampling for teacher forcing: for the rows with rows.need (in row order),
  // logprob[k] = log softmax(logits)[next[k]], in double (the rows' logits are downloaded).
  void step_logprobs(const DecodeRows& rows, std::span<const int32_t> next, std::span<double> logprob);

 private:
  StepBackend& be_;
  const StepWeights& w_;
  int64_t max_rows_;
  OpStep op_;
  const StepPerturbation* pert_ = nullptr;
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
struct ScoreRequest {
  std::vector<int32_t> prompt;  // at least one token
  std::vector<int32_t> target;  // the scored tokens
  int member = 0;               // population member (with a perturbation)
};
struct ScoreResult {
  double logprob = 0;  // summed over the target tokens
  int64_t tokens = 0;  // target tokens scored
};
std::vector<ScoreResult> score_targets(OpsStepper& stepper, std::span<const ScoreRequest> requests,
                                       GenStats* stats = nullptr);

std::vector<GenResult> generate(DecodeStepper& stepper, std::span<const GenRequest> requests, const GenOptions& opt,
                                GenStats* stats = nullptr);
// generate() on the CPU forward's backend and (packed) weights.
std::vector<GenResult> generate(Forward& fwd, std::span<const GenRequest> requests, const GenOptions& opt,
                                const StepPerturbation* pert = nullptr, GenStats* stats = nullptr);

}  // namespace eggroll
