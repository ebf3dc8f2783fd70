#include "rwkv/generate.h"

#include <chrono>

#include "core/error.h"

namespace eggroll {

std::vector<GenResult> generate(Forward& fwd, std::span<const GenRequest> requests, const GenOptions& opt,
                                Perturbation* pert, GenStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& cfg = fwd.model().cfg;
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

  BatchState st(cfg, n);
  std::vector<size_t> pos(size_t(n), 0);  // next prompt position
  std::vector<int> active(static_cast<size_t>(n));
  for (int j = 0; j < n; j++) active[size_t(j)] = j;
  std::vector<int32_t> tokens;
  std::vector<int> slots, members;
  std::vector<uint8_t> need;
  std::vector<float> logits;
  GenStats s;
  while (!active.empty()) {
    tokens.clear(), slots.clear(), members.clear(), need.clear();
    int n_logits = 0;
    for (int j : active) {
      const GenRequest& rq = requests[size_t(j)];
      const size_t p = pos[size_t(j)];
      const bool in_prompt = p < rq.prompt.size();
      tokens.push_back(in_prompt ? rq.prompt[p] : out[size_t(j)].tokens.back());
      slots.push_back(j);
      members.push_back(rq.member);
      const bool wants = !in_prompt || p + 1 == rq.prompt.size();
      need.push_back(wants ? 1 : 0);
      n_logits += wants;
      if (in_prompt) s.prompt_tokens++;
      pos[size_t(j)]++;
    }
    if (logits.size() < size_t(n_logits) * size_t(cfg.vocab)) logits.resize(size_t(n_logits) * size_t(cfg.vocab));
    fwd.step(tokens, slots, st, logits.data(), need, pert, members);
    s.steps++;
    std::vector<int> still;
    int row = 0;
    for (size_t i = 0; i < active.size(); i++) {
      const int j = active[i];
      if (!need[i]) {
        still.push_back(j);
        continue;
      }
      GenResult& r = out[size_t(j)];
      std::span<const float> lg(logits.data() + size_t(row++) * size_t(cfg.vocab), size_t(cfg.vocab));
      const int32_t t = sample_token(lg, opt.sampling, requests[size_t(j)].seed, r.tokens.size());
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

}  // namespace eggroll
