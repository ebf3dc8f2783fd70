#include "rwkv/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>

#include "core/error.h"
#include "core/ops/ops.h"

namespace eggroll {

BatchState::BatchState(const ModelConfig& cfg, int n)
    : members(n), n_layer(cfg.n_layer), n_embd(cfg.n_embd), n_head(cfg.n_head) {
  att_x.assign(size_t(n) * n_layer * n_embd, 0.f);
  ffn_x.assign(size_t(n) * n_layer * n_embd, 0.f);
  wkv.assign(size_t(n) * n_layer * n_head * kWkvHeadState, 0.f);
}

void BatchState::reset(int m) {
  std::fill_n(att_x_of(m, 0), size_t(n_layer) * n_embd, 0.f);
  std::fill_n(ffn_x_of(m, 0), size_t(n_layer) * n_embd, 0.f);
  std::fill_n(wkv_of(m, 0), size_t(n_layer) * n_head * kWkvHeadState, 0.f);
}

void BatchState::reset_all() {
  std::fill(att_x.begin(), att_x.end(), 0.f);
  std::fill(ffn_x.begin(), ffn_x.end(), 0.f);
  std::fill(wkv.begin(), wkv.end(), 0.f);
}

size_t BatchState::bytes_per_member() const {
  return sizeof(float) * size_t(n_layer) * (2 * size_t(n_embd) + size_t(n_head) * kWkvHeadState);
}

void BatchState::copy_member(int from, int to) {
  if (from == to) return;
  std::copy_n(att_x_of(from, 0), size_t(n_layer) * n_embd, att_x_of(to, 0));
  std::copy_n(ffn_x_of(from, 0), size_t(n_layer) * n_embd, ffn_x_of(to, 0));
  std::copy_n(wkv_of(from, 0), size_t(n_layer) * n_head * kWkvHeadState, wkv_of(to, 0));
}

Forward::Forward(const Model& model, bool pack) : m_(model), w_(host_step_weights(model)) {
  if (pack) prepare_products(be_, w_);
}

Forward::~Forward() {
  op_.reset();
  release_products(be_, w_);
}

void Forward::step(std::span<const int32_t> tokens, std::span<const int> slots, BatchState& st, float* logits,
                   std::span<const uint8_t> need_logits, const PerturbationView* pert, std::span<const int> members) {
  static_assert(sizeof(int) == sizeof(int32_t), "slots and members are passed as int32 arrays");
  const int64_t B = int64_t(tokens.size());
  if (B == 0) return;
  const int V = m_.cfg.vocab;
  if (int64_t(slots.size()) != B || (!members.empty() && int64_t(members.size()) != B) ||
      (!need_logits.empty() && int64_t(need_logits.size()) != B))
    throw std::invalid_argument("Forward::step: tokens, slots, members and need_logits differ in length");
  for (int32_t t : tokens)
    if (t < 0 || t >= V) throw InputError(fmt::format("token id {} out of range [0, {})", t, V));
  for (int s : slots)
    if (s < 0 || s >= st.members) throw std::invalid_argument(fmt::format("Forward::step: slot {} outside the state", s));
  if (B > rows_) {
    op_.reset();
    op_ = std::make_unique<ModelStep>(be_, w_, B);
    rows_ = B;
  }
  const int32_t* rows = nullptr;
  int64_t n = B;
  if (!need_logits.empty()) {
    logit_rows_.clear();
    for (int64_t i = 0; i < B; i++)
      if (need_logits[size_t(i)]) logit_rows_.push_back(int32_t(i));
    rows = logit_rows_.data();
    n = int64_t(logit_rows_.size());
  }
  const int32_t* mem = members.empty() ? slots.data() : members.data();
  op_->step(tokens.data(), slots.data(), mem, B, {st.att_x.data(), st.wkv.data(), st.ffn_x.data()}, logits, rows, n,
            pert);
}

}  // namespace eggroll
