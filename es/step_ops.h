#pragma once
// The batched RWKV-7 step written once against a small set of backend ops (DESIGN.md section 5:
// "model code written once against a small set of backend ops"). Every pointer handed to a
// StepBackend lives in that backend's memory (host memory for CpuStepBackend, device memory for
// the CUDA backend, cuda/device_forward.h); the step only does pointer arithmetic on them.
//
// OpStep::step mirrors rwkv/forward.cpp Forward::step op for op (same order, same op
// boundaries), including the EGGROLL perturbation of es/eggroll.cpp (low-rank corrections after
// each shared product, full-rank noise on vectors, the embedding and head corrections). With
// CpuStepBackend it reproduces Forward::step (tests/gpu_ops_main.cpp checks this on CPU), so the
// CUDA backend only has to get each op right, which the per-op GPU tests check.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "es/ops_ref.h"
#include "rwkv/model.h"
#include "rwkv/sampler.h"

namespace eggroll {

enum class WeightDType : uint8_t { F32, BF16 };

// One parameter in backend memory: fp32, or bf16 bits (matrices only; vectors are always fp32).
struct WeightView {
  const void* data = nullptr;
  WeightDType dtype = WeightDType::F32;
  int64_t rows = 0, cols = 0;  // Param::rows / cols (1 x n for vectors)
  // The backend's prepared form of an [out, in] matrix for y = W x products (the CPU backend's
  // GEMM panels, core/gemm.h PackedWeights), made by StepBackend::prepare_weight; nullptr: none.
  const void* prepared = nullptr;
  const float* f32() const { return static_cast<const float*>(data); }
};

// A vector argument: row i reads p + i * stride (stride 0 = shared, n = per-row copies).
struct VecArg {
  const float* p = nullptr;
  int64_t stride = 0;
};

// The per-member state of a batch of slots in backend memory (BatchState layout).
struct StateView {
  float* att_x = nullptr;  // [slots][L][C]
  float* wkv = nullptr;    // [slots][L][H][64][64]
  float* ffn_x = nullptr;  // [slots][L][C]
};

// The EGGROLL perturbation of one step: which parameter ids get low-rank / full-rank noise, the
// noise, and optionally a per-step cache per parameter ([pairs][(m+n) r] or [pairs][n], backend
// memory; nullptr = generate on the fly). members[i] of the step's rows selects the noise.
struct StepPerturbation {
  NoiseSpec noise;
  std::vector<uint8_t> lowrank, full;  // per parameter id
  std::vector<const float*> cache;     // per parameter id, or empty
  const float* cache_of(int pid) const { return cache.empty() ? nullptr : cache[size_t(pid)]; }
};

class StepBackend {
 public:
  virtual ~StepBackend() = default;
  // A prepared form of matrix w for y = W x products (nullptr: the backend has none), and its
  // refresh after w's values changed (same handle) and release. Default: none.
  virtual const void* prepare_weight(const WeightView& w) {
    (void)w;
    return nullptr;
  }
  virtual void refresh_prepared(const void* handle, const WeightView& w) { (void)handle, (void)w; }
  virtual void release_prepared(const void* handle) { (void)handle; }
  // memory
  // Whether host pointers are valid in this backend (then fp32 host arrays may be used in place).
  virtual bool shares_host_memory() const { return false; }
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // ops (es/ops_ref.h documents each)
  virtual void embed(const WeightView& emb, const int32_t* tokens, int64_t B, float* out) = 0;
  virtual void layer_norm(const float* x, VecArg w, VecArg b, float* y, int64_t B, int64_t n, float eps) = 0;
  virtual void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride,
                           int64_t layer_offset, const VecArg mu[6], float* out, int64_t B, int64_t C) = 0;
  virtual void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride,
                             int64_t layer_offset, VecArg mu, float* out, int64_t B, int64_t C) = 0;
  // Y[B, out] = X W^T (W [out, in]) or X P (x_times_p, P [in, out])
  virtual void linear(const WeightView& W, bool x_times_p, const float* X, float* Y, int64_t B) = 0;
  virtual void tanh_(float* x, int64_t n) = 0;
  virtual void sigmoid_(float* x, int64_t n) = 0;
  virtual void decay(float* w, VecArg w0, int64_t B, int64_t C) = 0;
  virtual void sigmoid_bias(float* a, VecArg a0, int64_t B, int64_t C) = 0;
  virtual void value_residual(float* v, const float* v_first, const float* t, VecArg v0, int64_t B,
                              int64_t C) = 0;
  virtual void kk_prepare(float* k, const float* a, VecArg k_k, VecArg k_a, float* kk, int64_t B, int64_t H) = 0;
  virtual void wkv7(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
                    const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
                    int64_t B, int64_t H) = 0;
  virtual void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                                     VecArg r_k, VecArg lw, VecArg lb, int64_t B, int64_t H, float eps) = 0;
  virtual void add(float* x, const float* t, int64_t n) = 0;
  virtual void relu_sq(float* x, int64_t n) = 0;
  virtual void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) = 0;
  virtual void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) = 0;
  // EGGROLL
  virtual void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p,
                           const float* X, float* Y, const int32_t* members, int64_t B, const float* cache) = 0;
  virtual void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n,
                                     const int32_t* tokens, float* X, const int32_t* members, int64_t B,
                                     const float* cache) = 0;
  virtual void vector_noise(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n,
                            const int32_t* members, int64_t B, const float* cache, float* out) = 0;
  virtual void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) = 0;

  // ---- around the step: sampling, the ES update, the optimizers (es/ops_ref.h documents each) ----
  // out[i] = sample_token(row i of logits [rows, V], p, seeds[i], counters[i]) (rwkv/sampler.h);
  // greedy (p.temperature == 0) reads neither seeds nor counters (they may be nullptr).
  virtual void sample(const float* logits, int64_t rows, int64_t V, const SamplingParams& p, const uint64_t* seeds,
                      const uint64_t* counters, int32_t* out) = 0;
  virtual void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness,
                              int64_t N, int64_t pair_begin, int64_t pairs, const float* cache, float* A_all,
                              float* B_all) = 0;
  // G[m, n] = A_all[m, K] B_all[n, K]^T (the update GEMM, fp32)
  virtual void update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) = 0;
  virtual void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                               int64_t pair_begin, int64_t pairs, const float* cache, float* g) = 0;
  // Reductions write their double result to out[0] of an array of reduce_doubles() doubles in
  // backend memory (the rest is the backend's scratch). Read it with download().
  virtual int64_t reduce_doubles() const = 0;
  virtual void sum_squares(const float* x, int64_t n, double* out) = 0;
  // Optimizer steps on one array (ref::sgd_update / adam_update): out[0] = sum of squares of the
  // applied change; w_bf16 (optional) receives the bf16 bits of the updated w.
  virtual void sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* out,
                          uint16_t* w_bf16) = 0;
  virtual void adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1,
                           double beta2, double eps, double weight_decay, bool adamw, double bc1, double bc2,
                           double scale, double* out, uint16_t* w_bf16) = 0;
};

// The reference backend: host memory, es/ops_ref.h ops, core/gemm.h products (fp32 weights;
// prepared matrices are pre-packed GEMM panels, which give the same bits as the unpacked product).
class CpuStepBackend final : public StepBackend {
 public:
  const void* prepare_weight(const WeightView& w) override;
  void refresh_prepared(const void* handle, const WeightView& w) override;
  void release_prepared(const void* handle) override;
  bool shares_host_memory() const override { return true; }
  void* alloc(size_t bytes) override;
  void release(void* p) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void zero(void* dst, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void synchronize() override {}
  void embed(const WeightView& emb, const int32_t* tokens, int64_t B, float* out) override;
  void layer_norm(const float* x, VecArg w, VecArg b, float* y, int64_t B, int64_t n, float eps) override;
  void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                   const VecArg mu[6], float* out, int64_t B, int64_t C) override;
  void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride,
                     int64_t layer_offset, VecArg mu, float* out, int64_t B, int64_t C) override;
  void linear(const WeightView& W, bool x_times_p, const float* X, float* Y, int64_t B) override;
  void tanh_(float* x, int64_t n) override;
  void sigmoid_(float* x, int64_t n) override;
  void decay(float* w, VecArg w0, int64_t B, int64_t C) override;
  void sigmoid_bias(float* a, VecArg a0, int64_t B, int64_t C) override;
  void value_residual(float* v, const float* v_first, const float* t, VecArg v0, int64_t B, int64_t C) override;
  void kk_prepare(float* k, const float* a, VecArg k_k, VecArg k_a, float* kk, int64_t B, int64_t H) override;
  void wkv7(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
            const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y, int64_t B,
            int64_t H) override;
  void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g, VecArg r_k,
                             VecArg lw, VecArg lb, int64_t B, int64_t H, float eps) override;
  void add(float* x, const float* t, int64_t n) override;
  void relu_sq(float* x, int64_t n) override;
  void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) override;
  void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) override;
  void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X,
                   float* Y, const int32_t* members, int64_t B, const float* cache) override;
  void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* tokens,
                             float* X, const int32_t* members, int64_t B, const float* cache) override;
  void vector_noise(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* members,
                    int64_t B, const float* cache, float* out) override;
  void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) override;
  void sample(const float* logits, int64_t rows, int64_t V, const SamplingParams& p, const uint64_t* seeds,
              const uint64_t* counters, int32_t* out) override;
  void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness, int64_t N,
                      int64_t pair_begin, int64_t pairs, const float* cache, float* A_all, float* B_all) override;
  void update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) override;
  void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                       int64_t pair_begin, int64_t pairs, const float* cache, float* g) override;
  int64_t reduce_doubles() const override { return 1; }
  void sum_squares(const float* x, int64_t n, double* out) override;
  void sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* out,
                  uint16_t* w_bf16) override;
  void adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale, double* out,
                   uint16_t* w_bf16) override;
};

// Buffers in a backend's memory owned together: released when the owner goes (or one by one).
class BackendBuffers {
 public:
  explicit BackendBuffers(StepBackend& be) : be_(be) {}
  ~BackendBuffers() {
    for (void* p : live_) be_.release(p);
  }
  BackendBuffers(const BackendBuffers&) = delete;
  BackendBuffers& operator=(const BackendBuffers&) = delete;
  void* bytes(size_t n) {
    live_.reserve(live_.size() + 1);  // so that the push_back below cannot throw and leak
    void* p = be_.alloc(n);
    live_.push_back(p);
    return p;
  }
  template <class T = float>
  T* array(int64_t n) {
    return static_cast<T*>(bytes(size_t(std::max<int64_t>(n, 1)) * sizeof(T)));
  }
  // Releases one buffer of this set (nullptr: nothing).
  void release(const void* p) {
    if (!p) return;
    auto it = std::find(live_.begin(), live_.end(), p);
    if (it == live_.end()) throw std::logic_error("BackendBuffers::release: not a buffer of this set");
    be_.release(*it);
    live_.erase(it);
  }
  void release_all() {
    for (void* p : live_) be_.release(p);
    live_.clear();
  }

 private:
  StepBackend& be_;
  std::vector<void*> live_;
};

// A model's parameters placed in a backend's memory (index = parameter id, as in Model).
struct StepWeights {
  ModelConfig cfg;
  std::vector<WeightView> params;
  int emb = -1, head = -1, ln0_w = -1, ln0_b = -1, lnout_w = -1, lnout_b = -1;
  std::vector<LayerParams> layers;
};
// The layout of `m` with every parameter pointing at the host Model's fp32 data (CPU backend).
StepWeights host_step_weights(const Model& m);

// Parameter ids of the matrices the step multiplies as y = W x (W [out, in]: receptance, key,
// value, output, the FFN's key and value, the head); the LoRA matrices are x P products.
inline std::vector<int> wx_product_ids(const StepWeights& w) {
  std::vector<int> ids;
  for (const LayerParams& L : w.layers)
    for (int pid : {L.Wr, L.Wk, L.Wv, L.Wo, L.ffn_key, L.ffn_value}) ids.push_back(pid);
  ids.push_back(w.head);
  return ids;
}

// Prepares (be.prepare_weight) every y = W x matrix of w in place; release_products undoes it.
inline void prepare_products(StepBackend& be, StepWeights& w) {
  for (int pid : wx_product_ids(w)) w.params[size_t(pid)].prepared = be.prepare_weight(w.params[size_t(pid)]);
}
inline void release_products(StepBackend& be, StepWeights& w) {
  for (int pid : wx_product_ids(w)) {
    be.release_prepared(w.params[size_t(pid)].prepared);
    w.params[size_t(pid)].prepared = nullptr;
  }
}

// The EGGROLL perturbation of a step in a backend's memory: the selection, the noise spec and,
// with NoiseCache::Keep, each selected parameter's factor cache ([pairs][len], generated by the
// backend). Like EggrollPerturbation, a cache is kept while the epoch bucket and the number of
// directions stay the same (the factors are unscaled, so sigma may change).
// ParamSelection / NoiseCache / NoiseConfig are the plain types of es/eggroll.h and es/noise.h.
class OpsPerturbation {
 public:
  // len[pid]: noise elements per pair of each parameter ((m + n) r for a low-rank matrix, n for a
  // vector, 0 = not perturbed); lowrank/full: the selection (per parameter id).
  OpsPerturbation(StepBackend& be, std::vector<uint8_t> lowrank, std::vector<uint8_t> full,
                  std::vector<int64_t> len, const NoiseSpec& spec, int noise_reuse, bool keep)
      : buffers_(be), be_(be), len_(std::move(len)), reuse_(noise_reuse), keep_(keep) {
    step_.noise = spec;
    step_.lowrank = std::move(lowrank);
    step_.full = std::move(full);
  }
  OpsPerturbation(const OpsPerturbation&) = delete;
  OpsPerturbation& operator=(const OpsPerturbation&) = delete;

  void begin_step(uint64_t epoch, int directions) {
    const uint32_t bucket = reuse_ <= 0 ? 0u : uint32_t(epoch / uint64_t(reuse_));
    const bool same = cached_ && directions == directions_ && bucket == step_.noise.epoch_bucket;
    step_.noise.epoch_bucket = bucket;
    directions_ = directions;
    if (!keep_ || same) return;
    free_cache();
    const int64_t pairs = (int64_t(directions) + 1) / 2;
    step_.cache.assign(len_.size(), nullptr);
    for (size_t pid = 0; pid < len_.size(); pid++) {
      if (!len_[pid]) continue;
      float* c = buffers_.array(pairs * len_[pid]);
      step_.cache[pid] = c;
      bytes_ += size_t(pairs * len_[pid]) * sizeof(float);
      be_.fill_noise_cache(step_.noise, uint32_t(pid), len_[pid], pairs, c);
    }
    cached_ = true;
  }
  void set_sigma(float sigma) { step_.noise.sigma = sigma; }
  const StepPerturbation& step() const { return step_; }
  size_t cache_bytes() const { return bytes_; }

 private:
  void free_cache() {
    buffers_.release_all();
    step_.cache.clear();
    bytes_ = 0;
    cached_ = false;
  }
  BackendBuffers buffers_;  // the cache
  StepBackend& be_;
  std::vector<int64_t> len_;
  int reuse_;
  bool keep_;
  StepPerturbation step_;
  int directions_ = 0;
  bool cached_ = false;
  size_t bytes_ = 0;
};

// Element counts of one slot's state (per member) and the layer offsets inside it.
struct StateLayout {
  int64_t L = 0, C = 0, H = 0;
  int64_t shift_slot_stride() const { return L * C; }
  int64_t wkv_slot_stride() const { return L * H * 4096; }
};

// Header-only (inline below), so that the CUDA library can use it without a link dependency on
// eggroll_lib (which links the CUDA library).
class OpStep {
 public:
  // max_rows: the largest batch step() will be given. Scratch is allocated in the backend.
  OpStep(StepBackend& be, const StepWeights& w, int64_t max_rows);
  OpStep(const OpStep&) = delete;
  OpStep& operator=(const OpStep&) = delete;

  // One token for each of B rows; every pointer in backend memory:
  //   tokens[B], slots[B] (state slot of each row), members[B] (population member of each row;
  //   only read with a perturbation), logits [n_logit_rows or B, V] (nullptr: none);
  //   logit_rows[n_logit_rows]: rows whose logits are written, packed in that order (nullptr:
  //   every row, in order).
  void step(const int32_t* tokens, const int32_t* slots, const int32_t* members, int64_t B, StateView st,
            float* logits, const int32_t* logit_rows = nullptr, int64_t n_logit_rows = 0,
            const StepPerturbation* pert = nullptr);

  StepBackend& backend() { return be_; }
  const StepWeights& weights() const { return w_; }

 private:
  VecArg vec(int pid, int64_t B);
  void linear(int pid, bool x_times_p, const float* X, float* Y, int64_t B);

  // Vector parameters one layer reads (each may need a per-row perturbed copy).
  static constexpr int64_t kVecSlotsPerLayer_ = 24;
  StepBackend& be_;
  StepWeights w_;
  int64_t max_rows_;
  const StepPerturbation* pert_ = nullptr;
  const int32_t* members_ = nullptr;
  BackendBuffers buffers_;
  float *x_, *xa_, *mix_, *r_, *k_, *v_, *w_dec_, *a_, *g_, *kk_, *vfirst_, *y_, *tmp_, *tmp2_, *ffh_, *vecbuf_;
  int32_t* idx_;
  int64_t vec_used_ = 0, vec_cap_ = 0;
};

// ---- OpStep (inline) ----------------------------------------------------------------------------

inline OpStep::OpStep(StepBackend& be, const StepWeights& w, int64_t max_rows)
    : be_(be), w_(w), max_rows_(max_rows), buffers_(be) {
  if (max_rows <= 0) throw std::invalid_argument("OpStep: max_rows must be > 0");
  const ModelConfig& c = w_.cfg;
  const int64_t C = c.n_embd, BC = max_rows * C;
  const int64_t lora_max = std::max({int64_t(c.dw), int64_t(c.da), int64_t(c.dv), int64_t(c.dg), int64_t(1)});
  auto get = [&](int64_t floats) { return buffers_.array(floats); };
  x_ = get(BC), xa_ = get(BC), mix_ = get(6 * BC), r_ = get(BC), k_ = get(BC), v_ = get(BC), w_dec_ = get(BC);
  a_ = get(BC), g_ = get(BC), kk_ = get(BC), vfirst_ = get(BC), y_ = get(BC);
  tmp_ = get(max_rows * lora_max), tmp2_ = get(BC), ffh_ = get(max_rows * int64_t(c.ffn));
  idx_ = buffers_.array<int32_t>(max_rows);
  vecbuf_ = nullptr;
}

inline VecArg OpStep::vec(int pid, int64_t B) {
  const WeightView& p = w_.params[size_t(pid)];
  if (!pert_ || !pert_->full[size_t(pid)]) return {p.f32(), 0};
  const int64_t n = p.rows * p.cols;
  if (!vecbuf_) {
    vec_cap_ = kVecSlotsPerLayer_ * max_rows_ * std::max<int64_t>(w_.cfg.n_embd, 64);
    vecbuf_ = buffers_.array(vec_cap_);
  }
  if (vec_used_ + B * n > vec_cap_) throw std::logic_error("OpStep: vector perturbation scratch exhausted");
  float* out = vecbuf_ + vec_used_;
  vec_used_ += B * n;
  be_.vector_noise(pert_->noise, uint32_t(pid), p.f32(), n, members_, B, pert_->cache_of(pid), out);
  return {out, n};
}

inline void OpStep::linear(int pid, bool x_times_p, const float* X, float* Y, int64_t B) {
  const WeightView& P = w_.params[size_t(pid)];
  be_.linear(P, x_times_p, X, Y, B);
  if (pert_ && pert_->lowrank[size_t(pid)])
    be_.lowrank_add(pert_->noise, uint32_t(pid), P.rows, P.cols, x_times_p, X, Y, members_, B, pert_->cache_of(pid));
}

inline void OpStep::step(const int32_t* tokens, const int32_t* slots, const int32_t* members, int64_t B, StateView st,
                         float* logits, const int32_t* logit_rows, int64_t n_logit_rows, const StepPerturbation* pert) {
  if (B <= 0) return;
  if (B > max_rows_) throw std::invalid_argument("OpStep::step: more rows than max_rows");
  if (pert && (pert->lowrank.size() != w_.params.size() || pert->full.size() != w_.params.size()))
    throw std::invalid_argument("OpStep::step: perturbation selection does not match the model");
  pert_ = pert;
  members_ = members ? members : slots;
  const ModelConfig& c = w_.cfg;
  const int64_t C = c.n_embd, H = c.n_head, L = c.n_layer, BC = B * C;
  const StateLayout lay{L, C, H};
  const float eps = 1e-5f;

  // embedding + ln0
  be_.embed(w_.params[size_t(w_.emb)], tokens, B, tmp2_);
  if (pert_ && pert_->lowrank[size_t(w_.emb)]) {
    const WeightView& E = w_.params[size_t(w_.emb)];
    be_.embedding_lowrank_add(pert_->noise, uint32_t(w_.emb), E.rows, E.cols, tokens, tmp2_, members_, B,
                              pert_->cache_of(w_.emb));
  }
  vec_used_ = 0;
  be_.layer_norm(tmp2_, vec(w_.ln0_w, B), vec(w_.ln0_b, B), x_, B, C, eps);

  for (int64_t l = 0; l < L; l++) {
    const LayerParams& P = w_.layers[size_t(l)];
    vec_used_ = 0;
    // ---- time mix ----
    be_.layer_norm(x_, vec(P.ln1_w, B), vec(P.ln1_b, B), xa_, B, C, eps);
    const VecArg mu[6] = {vec(P.x_r, B), vec(P.x_w, B), vec(P.x_k, B), vec(P.x_v, B), vec(P.x_a, B), vec(P.x_g, B)};
    be_.time_shift6(xa_, st.att_x, slots, lay.shift_slot_stride(), l * C, mu, mix_, B, C);
    float *xr = mix_, *xw = mix_ + BC, *xk = mix_ + 2 * BC, *xv = mix_ + 3 * BC, *xA = mix_ + 4 * BC,
          *xg = mix_ + 5 * BC;
    linear(P.Wr, false, xr, r_, B);
    linear(P.Wk, false, xk, k_, B);
    linear(P.Wv, false, xv, v_, B);
    // decay
    linear(P.w1, true, xw, tmp_, B);
    be_.tanh_(tmp_, B * c.dw);
    linear(P.w2, true, tmp_, w_dec_, B);
    be_.decay(w_dec_, vec(P.w0, B), B, C);
    // in-context learning rate
    linear(P.a1, true, xA, tmp_, B);
    linear(P.a2, true, tmp_, a_, B);
    be_.sigmoid_bias(a_, vec(P.a0, B), B, C);
    // gate
    linear(P.g1, true, xg, tmp_, B);
    be_.sigmoid_(tmp_, B * c.dg);
    linear(P.g2, true, tmp_, g_, B);
    // value residual
    if (l == 0) {
      be_.copy(vfirst_, v_, size_t(BC) * sizeof(float));
    } else {
      linear(P.v1, true, xv, tmp_, B);
      linear(P.v2, true, tmp_, tmp2_, B);
      be_.value_residual(v_, vfirst_, tmp2_, vec(P.v0, B), B, C);
    }
    // heads
    be_.kk_prepare(k_, a_, vec(P.k_k, B), vec(P.k_a, B), kk_, B, H);
    be_.wkv7(st.wkv, slots, lay.wkv_slot_stride(), l * H * 4096, r_, w_dec_, k_, v_, kk_, a_, y_, B, H);
    be_.group_norm_bonus_gate(y_, r_, k_, v_, g_, vec(P.r_k, B), vec(P.lnx_w, B), vec(P.lnx_b, B), B, H, 64e-5f);
    linear(P.Wo, false, y_, tmp2_, B);
    be_.add(x_, tmp2_, BC);

    // ---- channel mix ----
    be_.layer_norm(x_, vec(P.ln2_w, B), vec(P.ln2_b, B), xa_, B, C, eps);
    be_.channel_shift(xa_, st.ffn_x, slots, lay.shift_slot_stride(), l * C, vec(P.ffn_x_k, B), mix_, B, C);
    linear(P.ffn_key, false, mix_, ffh_, B);
    be_.relu_sq(ffh_, B * int64_t(c.ffn));
    linear(P.ffn_value, false, ffh_, tmp2_, B);
    be_.add(x_, tmp2_, BC);
  }

  if (!logits) {
    pert_ = nullptr;
    return;
  }
  // ln_out and the head on the rows that want logits (a perturbed ln_out is indexed by the
  // row's place in the full batch; the head's correction by the row's member)
  vec_used_ = 0;
  VecArg lw = vec(w_.lnout_w, B), lb = vec(w_.lnout_b, B);
  int64_t n = B;
  const float* xin = x_;
  const int32_t* head_members = members_;
  if (logit_rows) {
    n = n_logit_rows;
    if (n <= 0) {
      pert_ = nullptr;
      return;
    }
    be_.gather_rows(x_, logit_rows, n, C, tmp2_);
    xin = tmp2_;
    if (lw.stride) {
      be_.gather_rows(lw.p, logit_rows, n, C, mix_);
      lw.p = mix_;
    }
    if (lb.stride) {
      be_.gather_rows(lb.p, logit_rows, n, C, mix_ + BC);
      lb.p = mix_ + BC;
    }
    if (pert_) {
      be_.gather_i32(members_, logit_rows, n, idx_);
      head_members = idx_;
    }
  }
  be_.layer_norm(xin, lw, lb, xa_, n, C, eps);
  const WeightView& Hd = w_.params[size_t(w_.head)];
  be_.linear(Hd, false, xa_, logits, n);
  if (pert_ && pert_->lowrank[size_t(w_.head)])
    be_.lowrank_add(pert_->noise, uint32_t(w_.head), Hd.rows, Hd.cols, false, xa_, logits, head_members, n,
                    pert_->cache_of(w_.head));
  pert_ = nullptr;
}

}  // namespace eggroll
