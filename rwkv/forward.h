#pragma once
// The batched RWKV-7 single-token step on the CPU: B members, each with its own state and
// token, one call. Weights are shared; every matrix product is one GEMM over the batch.
#include <cstdint>
#include <span>
#include <vector>

#include "core/gemm.h"
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
  float* wkv_of(int m, int l) { return wkv.data() + (size_t(m) * n_layer + size_t(l)) * size_t(n_head) * 4096; }
  void copy_member(int from, int to);  // state of `from` copied into `to`
};

// Member-specific changes to the weights (EGGROLL perturbations). The forward calls it after
// each shared GEMM and for each vector parameter.
class Perturbation {
 public:
  virtual ~Perturbation() = default;
  // Adds the correction of parameter `pid` for each row i (member members[i]) to Y[i, :].
  // x_times_p: the product is y = x @ P (LoRA-style w1, stored [in, out]); otherwise y = P x
  // (stored [out, in]). X is [rows, in], Y is [rows, out], row-major.
  virtual void add_linear(int pid, bool x_times_p, const float* X, int64_t in, float* Y, int64_t out,
                          std::span<const int> members) = 0;
  // Whether vector parameter `pid` differs per member; then add_vector adds member's delta to out[n].
  virtual bool perturbs_vector(int pid) const = 0;
  virtual void add_vector(int pid, int member, float* out, int64_t n) = 0;
  // The embedding lookup: adds row tokens[i] of member's perturbation of `pid` to X[i, :C].
  virtual void add_embedding(int pid, std::span<const int32_t> tokens, float* X, int64_t C,
                             std::span<const int> members) = 0;
};

class Forward {
 public:
  // pack: rearrange every [out, in] matrix once into GEMM panels (faster products, one more
  // copy of those weights in memory). The weights must not change while the Forward is in use
  // (make a new one after an update).
  explicit Forward(const Model& model, bool pack = true);
  // One token for each row i: tokens[i] is fed to the state in slot slots[i] of `st`.
  // If need_logits is empty every row's logits are written; otherwise only rows with
  // need_logits[i] != 0, packed in row order. logits: [rows with logits, V].
  // With a perturbation, row i runs population member members[i] (empty: members = slots).
  void step(std::span<const int32_t> tokens, std::span<const int> slots, BatchState& st, float* logits,
            std::span<const uint8_t> need_logits = {}, Perturbation* pert = nullptr,
            std::span<const int> members = {});
  const Model& model() const { return m_; }

 private:
  const Model& m_;
  std::vector<PackedWeights> packed_;  // per parameter id; empty when not packed
  // scratch, resized per call
  std::vector<float> x_, xa_, xx_, mix_[6], r_, k_, v_, w_, a_, g_, kk_, vfirst_, y_, tmp_, tmp2_, ffh_;
  std::vector<std::vector<float>> vecbuf_;
};


// ---- CPU reference ops (one row / one head; the CUDA kernels are tested against these) ----
void layer_norm_row(const float* x, const float* w, const float* b, float* y, int64_t n, float eps = 1e-5f);
// One WKV-7 head update for one member: S [64][64] (row = value index), all vectors [64].
void wkv7_head(float* S, const float* r, const float* decay, const float* k, const float* v, const float* kk,
               const float* a, float* y);

}  // namespace eggroll
