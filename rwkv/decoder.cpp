#include "rwkv/decoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

#include "core/error.h"

namespace eggroll {

namespace {
// Byte offsets of the io block: int32 tokens, slots, members, logit rows, sampled [max_rows each],
// then uint64 seeds, counters [max_rows each] (8-byte aligned).
struct IoLayout {
  int64_t R;
  size_t i32(int which) const { return size_t(which) * size_t(R) * 4; }
  size_t u64_base() const { return (size_t(5 * R) * 4 + 7) / 8 * 8; }
  size_t u64(int which) const { return u64_base() + size_t(which) * size_t(R) * 8; }
  size_t bytes() const { return u64(2); }
};
}  // namespace

// ---- Decoder ---------------------------------------------------------------------------------

Decoder::Decoder(Backend& be, const ModelWeights& w, int64_t max_rows)
    : be_(be), w_(w), max_rows_(max_rows), op_(be, w, max_rows), buffers_(be), states_(be) {
  const IoLayout io{max_rows};
  logits_ = buffers_.array(max_rows * int64_t(w.cfg.vocab));
  io_ = buffers_.bytes(io.bytes());
  host_.resize(io.bytes());
}

void Decoder::reset(int slots) {
  if (slots <= 0) throw std::invalid_argument("Decoder::reset: slots must be > 0");
  const StateLayout lay{w_.cfg.n_layer, w_.cfg.n_embd, w_.cfg.n_head};
  if (slots > slots_cap_) {  // larger state arrays
    states_.release_all();
    st_ = {};
    slots_cap_ = 0;
    st_.att_x = states_.array(int64_t(slots) * lay.shift_slot_stride());
    st_.ffn_x = states_.array(int64_t(slots) * lay.shift_slot_stride());
    st_.wkv = states_.array(int64_t(slots) * lay.wkv_slot_stride());
    slots_cap_ = slots;
  }
  be_.zero(st_.att_x, size_t(slots) * size_t(lay.shift_slot_stride()) * sizeof(float));
  be_.zero(st_.ffn_x, size_t(slots) * size_t(lay.shift_slot_stride()) * sizeof(float));
  be_.zero(st_.wkv, size_t(slots) * size_t(lay.wkv_slot_stride()) * sizeof(float));
}

void Decoder::upload_rows(const DecodeRows& rows, int64_t n, const char* what) {
  const int64_t B = int64_t(rows.tokens.size());
  if (B > max_rows_) throw std::invalid_argument(fmt::format("Decoder::{}: more rows than max_rows", what));
  const IoLayout io{max_rows_};
  auto h32 = [&](int which) { return reinterpret_cast<int32_t*>(host_.data() + io.i32(which)); };
  for (int64_t i = 0; i < B; i++) {
    const int32_t t = rows.tokens[size_t(i)];
    if (t < 0 || t >= w_.cfg.vocab)
      throw std::invalid_argument(
          fmt::format("Decoder::{}: token {} outside the vocabulary of {}", what, t, w_.cfg.vocab));
    h32(0)[i] = t;
    h32(1)[i] = rows.slots[size_t(i)];
    h32(2)[i] = rows.members.empty() ? rows.slots[size_t(i)] : rows.members[size_t(i)];
  }
  int64_t k = 0;
  for (int64_t i = 0; i < B; i++)
    if (rows.need.empty() || rows.need[size_t(i)]) h32(3)[k++] = int32_t(i);
  if (k != n)
    throw std::invalid_argument(fmt::format("Decoder::{}: the outputs do not match the rows that need one", what));
  be_.upload(io_, host_.data(), io.i32(4));  // the int32 block
}

void Decoder::step(const DecodeRows& rows, const SamplingParams& sp, std::span<int32_t> sampled) {
  const int64_t B = int64_t(rows.tokens.size()), n = int64_t(sampled.size());
  if (B == 0) return;
  upload_rows(rows, n, "step");
  const IoLayout io{max_rows_};
  auto h64 = [&](int which) { return reinterpret_cast<uint64_t*>(host_.data() + io.u64(which)); };
  for (int64_t j = 0; j < n; j++) h64(0)[j] = rows.seeds[size_t(j)], h64(1)[j] = rows.counters[size_t(j)];
  auto* d = static_cast<uint8_t*>(io_);
  if (n) be_.upload(d + io.u64(0), host_.data() + io.u64(0), io.bytes() - io.u64(0));  // the uint64 block
  auto d32 = [&](int which) { return reinterpret_cast<int32_t*>(d + io.i32(which)); };
  auto d64 = [&](int which) { return reinterpret_cast<uint64_t*>(d + io.u64(which)); };
  op_.step(d32(0), d32(1), d32(2), B, st_, n ? logits_ : nullptr, n == B ? nullptr : d32(3), n, pert_);
  if (n == 0) return;
  be_.sample(logits_, n, w_.cfg.vocab, sp, d64(0), d64(1), d32(4));
  be_.download(sampled.data(), d32(4), size_t(n) * sizeof(int32_t));
  be_.synchronize();
}

std::vector<int32_t> Decoder::greedy_steps(std::span<const int32_t> first, int steps) {
  const int64_t B = int64_t(first.size());
  if (B <= 0 || B > max_rows_ || B > slots_cap_)
    throw std::invalid_argument("Decoder::greedy_steps: rows must be in 1..max_rows and reset() to as many slots");
  const IoLayout io{max_rows_};
  auto h32 = [&](int which) { return reinterpret_cast<int32_t*>(host_.data() + io.i32(which)); };
  for (int64_t i = 0; i < B; i++) {
    const int32_t t = first[size_t(i)];
    if (t < 0 || t >= w_.cfg.vocab)
      throw std::invalid_argument(fmt::format("Decoder::greedy_steps: token {} outside the vocabulary of {}", t,
                                              w_.cfg.vocab));
    h32(0)[i] = t;
    h32(1)[i] = int32_t(i);
  }
  auto* d = static_cast<uint8_t*>(io_);
  auto d32 = [&](int which) { return reinterpret_cast<int32_t*>(d + io.i32(which)); };
  be_.upload(d32(0), h32(0), size_t(B) * 4);
  be_.upload(d32(1), h32(1), size_t(B) * 4);
  const SamplingParams greedy;
  for (int t = 0; t < steps; t++) {
    op_.step(d32(0), d32(1), d32(1), B, st_, logits_, nullptr, 0, pert_);
    be_.sample(logits_, B, w_.cfg.vocab, greedy, nullptr, nullptr, d32(0));
  }
  std::vector<int32_t> out(static_cast<size_t>(B));
  be_.download(out.data(), d32(0), size_t(B) * 4);
  be_.synchronize();
  return out;
}

void Decoder::step_logprobs(const DecodeRows& rows, std::span<const int32_t> next, std::span<double> logprob) {
  const int64_t B = int64_t(rows.tokens.size()), n = int64_t(next.size()), V = w_.cfg.vocab;
  if (B == 0) return;
  if (int64_t(logprob.size()) != n) throw std::invalid_argument("Decoder::step_logprobs: logprob size");
  upload_rows(rows, n, "step_logprobs");
  const IoLayout io{max_rows_};
  auto d32 = [&](int which) { return reinterpret_cast<int32_t*>(static_cast<uint8_t*>(io_) + io.i32(which)); };
  op_.step(d32(0), d32(1), d32(2), B, st_, n ? logits_ : nullptr, n == B ? nullptr : d32(3), n, pert_);
  if (n == 0) return;
  logits_host_.resize(size_t(n * V));
  be_.download(logits_host_.data(), logits_, logits_host_.size() * sizeof(float));
  be_.synchronize();
  for (int64_t j = 0; j < n; j++) {
    const float* l = logits_host_.data() + j * V;
    const int32_t y = next[size_t(j)];
    if (y < 0 || y >= V)
      throw std::invalid_argument(fmt::format("Decoder::step_logprobs: target {} outside the vocabulary of {}", y, V));
    double mx = l[0];
    for (int64_t v = 1; v < V; v++) mx = std::max(mx, double(l[v]));
    double sum = 0;
    for (int64_t v = 0; v < V; v++) sum += std::exp(double(l[v]) - mx);
    logprob[size_t(j)] = double(l[y]) - mx - std::log(sum);
  }
}

std::vector<ScoreResult> score_targets(Decoder& stepper, std::span<const ScoreRequest> requests, GenStats* stats,
                                       int64_t chunk_tokens) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = requests.size();
  std::vector<ScoreResult> out(n);
  if (n == 0) return out;
  if (chunk_tokens < 0) throw std::invalid_argument("score_targets: chunk_tokens must be >= 0");
  std::vector<std::vector<int32_t>> seq(n);
  int64_t chunks = 1;  // passes: the prompt and the first chunk of the target, then one chunk each
  for (size_t j = 0; j < n; j++) {
    if (requests[j].prompt.empty()) throw InputError("score_targets: empty prompt (give at least one token)");
    seq[j] = requests[j].prompt;
    seq[j].insert(seq[j].end(), requests[j].target.begin(), requests[j].target.end());
    const int64_t T = int64_t(requests[j].target.size());
    if (chunk_tokens > 0) chunks = std::max(chunks, (T + chunk_tokens - 1) / chunk_tokens);
  }
  stepper.reset(int(n));
  std::vector<int32_t> tokens, next;
  std::vector<int> slots, members;
  std::vector<uint8_t> need;
  std::vector<double> lp;
  GenStats s;
  // Feeding token t of a sequence gives the logits that score token t + 1 when that token
  // belongs to the target. Pass c feeds, for every sequence, the tokens that score target chunk
  // c (target tokens [c C, (c + 1) C), C = chunk_tokens; pass 0 feeds the prompt before them);
  // the state slots are not reset between passes, so the state is carried from one chunk to the
  // next. Without chunks (C = 0), one pass feeds everything.
  auto feed_end = [&](size_t j, int64_t c) {  // one past the last token position pass c feeds
    const size_t P = requests[j].prompt.size(), len = seq[j].size();
    if (chunk_tokens == 0 || c + 1 >= chunks) return len - 1;
    return std::min(len - 1, P - 1 + size_t(c + 1) * size_t(chunk_tokens));
  };
  std::vector<size_t> pos(n, 0);  // next position to feed
  for (int64_t c = 0; c < chunks; c++) {
    for (;;) {
      tokens.clear(), slots.clear(), members.clear(), need.clear(), next.clear();
      for (size_t j = 0; j < n; j++) {
        const size_t t = pos[j];
        if (t >= feed_end(j, c)) continue;
        tokens.push_back(seq[j][t]);
        slots.push_back(int(j));
        members.push_back(requests[j].member);
        const bool scored = t + 1 >= requests[j].prompt.size();
        need.push_back(scored ? 1 : 0);
        if (scored) next.push_back(seq[j][t + 1]);
        (scored ? s.generated_tokens : s.prompt_tokens)++;
        pos[j]++;
      }
      if (tokens.empty()) break;
      lp.assign(next.size(), 0.0);
      s.steps++;
      DecodeRows rows{tokens, slots, members, need, {}, {}};
      stepper.step_logprobs(rows, next, lp);
      size_t k = 0;
      for (size_t i = 0; i < tokens.size(); i++)
        if (need[i]) {
          ScoreResult& r = out[size_t(slots[i])];
          r.logprob += lp[k++];
          r.tokens++;
        }
    }
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) *stats = s;
  return out;
}

std::vector<GenResult> generate(Decoder& stepper, std::span<const GenRequest> requests, const GenOptions& opt,
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
                                const PerturbationView* pert, GenStats* stats) {
  Decoder stepper(fwd.backend(), fwd.weights(), std::max<int64_t>(int64_t(requests.size()), 1));
  stepper.set_perturbation(pert);
  return generate(stepper, requests, opt, stats);
}

}  // namespace eggroll
