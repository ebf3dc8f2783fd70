#pragma once
// The batched RWKV-7 step, written once against the backend interface (core/backend.h): one
// token for each of B rows, every matrix product one shared GEMM over the rows, the EGGROLL
// perturbation applied as low-rank corrections after each product (rows pick their population
// member). It runs unchanged on every backend; docs/architecture.md follows one step through it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <initializer_list>
#include <vector>

#include "core/backend.h"
#include "core/ops/wkv7.h"
#include "rwkv/model.h"

namespace eggroll {

// The per-member state of a batch of slots in backend memory (slot-major).
struct StateView {
  float* att_x = nullptr;  // [slots][L][C]
  float* wkv = nullptr;    // [slots][L][H][64][64]
  float* ffn_x = nullptr;  // [slots][L][C]
};

// What the step reads of the EGGROLL perturbation (owned by es/perturbation.h's Perturbation, as
// StateView is a view of states owned elsewhere): which parameter ids get low-rank / full-rank
// noise, the noise, and optionally a per-step cache per parameter ([pairs][(m+n) r] or [pairs][n],
// backend memory; nullptr = generate on the fly). members[i] of the step's rows selects the noise.
struct PerturbationView {
  NoiseSpec noise;
  std::vector<uint8_t> lowrank, full;  // per parameter id
  std::vector<const float*> cache;     // per parameter id, or empty
  const float* cache_of(int pid) const { return cache.empty() ? nullptr : cache[size_t(pid)]; }
};

// A model's parameters placed in a backend's memory (index = parameter id, as in Model).
struct ModelWeights {
  ModelConfig cfg;
  std::vector<WeightView> params;
  int emb = -1, head = -1, ln0_w = -1, ln0_b = -1, lnout_w = -1, lnout_b = -1;
  std::vector<LayerParams> layers;
};
// m's configuration and parameter indices, with no parameters placed yet (params empty).
ModelWeights weights_layout(const Model& m);
// The layout of `m` with every parameter pointing at the host Model's fp32 data (CPU backend).
ModelWeights host_step_weights(const Model& m);

// The matrices the step multiplies, each once per token: y = W x (W [out, in]: receptance, key,
// value, output, the FFN's key and value, the head) and y = x P (the LoRA matrices, P [in, out];
// layer 0's v1/v2, when a checkpoint carries them, are not multiplied: no value residual there).
struct ProductMatrix {
  int pid;
  bool x_times_p;
};
inline std::vector<ProductMatrix> product_matrices(const ModelWeights& w) {
  std::vector<ProductMatrix> ids;
  for (size_t l = 0; l < w.layers.size(); l++) {
    const LayerParams& L = w.layers[l];
    for (int pid : {L.Wr, L.Wk, L.Wv, L.Wo, L.ffn_key, L.ffn_value}) ids.push_back({pid, false});
    for (int pid : {L.w1, L.w2, L.a1, L.a2, L.g1, L.g2}) ids.push_back({pid, true});
    if (l > 0)
      for (int pid : {L.v1, L.v2}) ids.push_back({pid, true});
  }
  ids.push_back({w.head, false});
  return ids;
}

// Prepares (be.prepare_weight) every product matrix of w in place; release_products undoes it.
inline void prepare_products(Backend& be, ModelWeights& w) {
  for (ProductMatrix p : product_matrices(w))
    w.params[size_t(p.pid)].prepared = be.prepare_weight(w.params[size_t(p.pid)], p.x_times_p);
}
inline void release_products(Backend& be, ModelWeights& w) {
  for (ProductMatrix p : product_matrices(w)) {
    be.release_prepared(w.params[size_t(p.pid)].prepared);
    w.params[size_t(p.pid)].prepared = nullptr;
  }
}

// Element counts of one slot's state (per member) and the layer offsets inside it.
struct StateLayout {
  int64_t L = 0, C = 0, H = 0;
  int64_t shift_slot_stride() const { return L * C; }
  int64_t wkv_slot_stride() const { return L * H * kWkvHeadState; }
};

class ModelStep {
 public:
  // max_rows: the largest batch step() will be given. Scratch is allocated in the backend.
  // w is copied: prepare the products (prepare_products) before, not after, making the step.
  ModelStep(Backend& be, const ModelWeights& w, int64_t max_rows);
  ModelStep(const ModelStep&) = delete;
  ModelStep& operator=(const ModelStep&) = delete;

  // One token for each of B rows; every pointer in backend memory:
  //   tokens[B], slots[B] (state slot of each row), members[B] (population member of each row;
  //   only read with a perturbation), logits [n_logit_rows or B, V] (nullptr: none);
  //   logit_rows[n_logit_rows]: rows whose logits are written, packed in that order (nullptr:
  //   every row, in order).
  void step(const int32_t* tokens, const int32_t* slots, const int32_t* members, int64_t B, StateView st,
            float* logits, const int32_t* logit_rows = nullptr, int64_t n_logit_rows = 0,
            const PerturbationView* pert = nullptr);

  Backend& backend() { return be_; }
  const ModelWeights& weights() const { return w_; }

 private:
  VecArg vec(int pid, int64_t B);
  void linear(int pid, bool x_times_p, const float* X, float* Y, int64_t B);
  // Independent products as one Backend::linear_group (at most 8), each with its low-rank
  // correction when the perturbation has one (rows' members: `members`, default the step's)
  struct Product {
    int pid;
    bool x_times_p;
    const float* X;
    float* Y;
  };
  void linear_group(std::initializer_list<Product> products, int64_t B, const int32_t* members = nullptr);

  // Vector parameters one layer reads (each may need a per-row perturbed copy).
  static constexpr int64_t kVecSlotsPerLayer_ = 24;
  Backend& be_;
  ModelWeights w_;
  int64_t max_rows_;
  const PerturbationView* pert_ = nullptr;
  const int32_t* members_ = nullptr;
  BackendBuffers buffers_;
  float *x_, *xa_, *mix_, *r_, *k_, *v_, *w_dec_, *a_, *g_, *kk_, *vfirst_, *y_, *tmp_, *tmp2_, *ffh_, *vecbuf_;
  int32_t* idx_;
  int64_t vec_used_ = 0, vec_cap_ = 0;
};

}  // namespace eggroll
