#include "rwkv/generate.h"

#include <chrono>

#include "core/error.h"

namespace eggroll {

void ForwardStepper::reset(int slots) { st_ = std::make_unique<BatchState>(fwd_.model().cfg, slots); }

void ForwardStepper::step(const DecodeRows& rows, const SamplingParams& sp, std::span<int32_t> sampled) {
  const size_t V = size_t(vocab());
  if (logits_.size() < sampled.size() * V) logits_.resize(sampled.size() * V);
  fwd_.step(rows.tokens, rows.slots, *st_, logits_.data(), rows.need, pert_, rows.members);
  for (size_t k = 0; k < sampled.size(); k++)
    sampled[k] = sample_token(std::span<const float>(logits_.data() + k * V, V), sp, rows.seeds[k], rows.counters[k]);
}

std::vector<GenResult> generate(DecodeStepper& stepper, std::span<const GenRequest> requests, const GenOptions& opt,
                                GenStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  const int n = int(requests.size());
  std::vector<GenResult> out(static_cast<size_t>(n));
  if (n == 0) return out;
  if (opt.max_tokens <= 0) {
    for (auto& r : out) r.stop_reason = "length";
    return out;
  }
  if (!opt.stop_strings.empty() && !opt.tokenizer)
    throw std::logic_error("generate: stop strings need a tokenizer");
  for (int j = 0; j < n; j++)
    if (requests[size_t(j)].prompt.empty()) throw InputError("generate: empty prompt (give at least one token)");

  stepper.reset(n);
  std::vector<size_t> pos(size_t(n), 0);  // next prompt position
  std::vector<int> active(static_cast<size_t>(n));
  for (int j = 0; j < n; j++) active[size_t(j)] = j;
  std::vector<int32_t> tokens, sampled;
  std::vector<int> slots, members;
  std::vector<uint8_t> need;
  std::vector<uint64_t> seeds, counters;
  GenStats s;
  while (!active.empty()) {
    tokens.clear(), slots.clear(), members.clear(), need.clear(), seeds.clear(), counters.clear();
    for (int j : active) {
      const GenRequest& rq = requests[size_t(j)];
      const size_t p = pos[size_t(j)];
      const bool in_prompt = p < rq.prompt.size();
      tokens.push_back(in_prompt ? rq.prompt[p] : out[size_t(j)].tokens.back());
      slots.push_back(j);
      members.push_back(rq.member);
      const bool wants = !in_prompt || p + 1 == rq.prompt.size();
      need.push_back(wants ? 1 : 0);
      if (wants) seeds.push_back(rq.seed), counters.push_back(out[size_t(j)].tokens.size());
      if (in_prompt) s.prompt_tokens++;
      pos[size_t(j)]++;
    }
    sampled.assign(seeds.size(), 0);
    stepper.step({tokens, slots, members, need, seeds, counters}, opt.sampling, sampled);
    s.steps++;
    std::vector<int> still;
    size_t row = 0;
    for (size_t i = 0; i < active.size(); i++) {
      const int j = active[i];
      if (!need[i]) {
        still.push_back(j);
        continue;
      }
      GenResult& r = out[size_t(j)];
      const int32_t t = sampled[row++];
      r.tokens.push_back(t);
      s.generated_tokens++;
      bool done = false;
      if (t == 0 && opt.stop_on_eod) {
        r.stop_reason = "eod";
        done = true;
      } else if (opt.tokenizer) {
        const size_t before = r.text.size();
        r.text += opt.tokenizer->token_bytes(t);
        for (const std::string& ss : opt.stop_strings) {
          if (ss.empty()) continue;
          const size_t from = before >= ss.size() ? before - ss.size() + 1 : 0;
          const size_t at = r.text.find(ss, from);
          if (at != std::string::npos) {
            r.text.resize(at);
            r.stop_reason = "stop";
            done = true;
            break;
          }
        }
      }
      if (!done && int(r.tokens.size()) >= opt.max_tokens) {
        r.stop_reason = "length";
        done = true;
      }
      if (!done) still.push_back(j);
    }
    active.swap(still);
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) *stats = s;
  return out;
}

std::vector<GenResult> generate(Forward& fwd, std::span<const GenRequest> requests, const GenOptions& opt,
                                const StepPerturbation* pert, GenStats* stats) {
  ForwardStepper stepper(fwd, pert);
  return generate(stepper, requests, opt, stats);
}

}  // namespace eggroll
