#pragma once
// The batched RWKV-7 single-token step on the CPU: B members, each with its own state and
// token, one call. Weights are shared; every matrix product is one GEMM over the batch.
#include <cstdint>
#include <span>
#include <vector>

#include <memory>

#include "core/cpu_backend.h"
#include "rwkv/step.h"
#include "rwkv/model.h"

namespace eggroll {

// Per-member recurrent state: for each layer att_x_prev[C], wkv[H][64][64] (fp32), ffn_x_prev[C].
struct BatchState {
  int members = 0, n_layer = 0, n_embd = 0, n_head = 0;
  std::vector<float> att_x, wkv, ffn_x;

  BatchState() = default;
  BatchState(const ModelConfig& cfg, int members);
  void reset(int member);  // zero one member's state
  void reset_all();
  size_t bytes_per_member() const;
  float* att_x_of(int m, int l) { return att_x.data() + (size_t(m) * n_layer + size_t(l)) * n_embd; }
  float* ffn_x_of(int m, int l) { return ffn_x.data() + (size_t(m) * n_layer + size_t(l)) * n_embd; }
  float* wkv_of(int m, int l) { return wkv.data() + (size_t(m) * n_layer + size_t(l)) * size_t(n_head) * kWkvHeadState; }
  void copy_member(int from, int to);  // state of `from` copied into `to`
};

// The batched step on the CPU: rwkv/step.h ModelStep (the op sequence every backend runs) on the
// CPU reference backend, reading the Model's weights in place.
class Forward {
 public:
  // pack: rearrange every [out, in] matrix once into GEMM panels (faster products, one more
  // copy of those weights in memory; the same results). The weights must not change while the
  // Forward is in use (make a new one after an update).
  explicit Forward(const Model& model, bool pack = true);
  ~Forward();
  Forward(const Forward&) = delete;
  Forward& operator=(const Forward&) = delete;
  // One token for each row i: tokens[i] is fed to the state in slot slots[i] of `st`.
  // If need_logits is empty every row's logits are written; otherwise only rows with
  // need_logits[i] != 0, packed in row order. logits: [rows with logits, V].
  // With a perturbation (host memory, e.g. Perturbation::step()), row i runs population
  // member members[i] (empty: members = slots).
  void step(std::span<const int32_t> tokens, std::span<const int> slots, BatchState& st, float* logits,
            std::span<const uint8_t> need_logits = {}, const PerturbationView* pert = nullptr,
            std::span<const int> members = {});
  const Model& model() const { return m_; }
  // The backend and the weights the step reads (for other drivers of the same step, e.g. the
  // Decoder of rwkv/decoder.h).
  Backend& backend() { return be_; }
  const ModelWeights& weights() const { return w_; }

 private:
  const Model& m_;
  CpuBackend be_;
  ModelWeights w_;
  std::unique_ptr<ModelStep> op_;  // sized for rows_ rows (grown on demand)
  int64_t rows_ = 0;
  std::vector<int32_t> logit_rows_;
};

}  // namespace eggroll
