#pragma once
// The compute backend interface: every op the RWKV-7 step (rwkv/step.h) and the ES step
// (es/population_engine.h) need, on arrays in the backend's memory. One implementation per device:
// CpuBackend (core/cpu_backend.h, the CPU reference ops of core/ops/) and the CUDA backend
// (cuda/cuda_backend.h, kernels of the same names in cuda/<group>.cu). Backends register
// themselves by name (make_backend("cpu"), make_backend("cuda") when built with CUDA), so nothing
// below the application names a device. Every pointer handed to a backend lives in that
// backend's memory; callers only do pointer arithmetic on them. docs/architecture.md has the op
// groups and where each op's reference, kernel and op-table row live.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/noise.h"
#include "core/ops/sample.h"

namespace eggroll {

// One parameter in backend memory: fp32, or bf16 bits (matrices only; vectors are always fp32).
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;  // F32, or BF16 bits (matrices only)
  int64_t rows = 0, cols = 0;  // Param::rows / cols (1 x n for vectors)
  // The backend's prepared form of the matrix for its products (the CPU backend's GEMM panels:
  // core/gemm.h PackedWeights, core/gemm_bf16.h PackedBf16), made by Backend::prepare_weight;
  // nullptr: none. data may be nullptr when the prepared form replaces it.
  const void* prepared = nullptr;
  const float* f32() const { return static_cast<const float*>(data); }
};

// A vector argument: row i reads p + i * stride (stride 0 = shared, n = per-row copies).
struct VecArg {
  const float* p = nullptr;
  int64_t stride = 0;
};

// The low-rank correction of one product (Backend::lowrank_add's arguments other than the
// product's own shape, X and Y): the noise of parameter `pid`, row i for member members[i].
struct LowRankArg {
  const NoiseSpec* ns = nullptr;
  uint32_t pid = 0;
  const int32_t* members = nullptr;
  const float* cache = nullptr;  // the step's cache of this parameter, or nullptr (regenerated)
};

// One product of Backend::linear_group: Y = X W^T, or X P when x_times_p (as Backend::linear),
// then, when lowrank is set, its low-rank correction (Backend::lowrank_add over the same X and Y).
struct LinearItem {
  const WeightView* W;
  bool x_times_p;
  const float* X;
  float* Y;
  const LowRankArg* lowrank = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu", "cuda"
  virtual const char* name() const = 0;
  // A prepared form of matrix w for its products (y = W x, or y = x P when x_times_p; nullptr:
  // the backend has none), its refresh after w's values changed (same handle; w may then be the
  // fp32 master values of a bf16 matrix: the prepared form holds their bf16 rounding) and its
  // release. Default: none.
  virtual const void* prepare_weight(const WeightView& w, bool x_times_p) {
    (void)w, (void)x_times_p;
    return nullptr;
  }
  virtual void refresh_prepared(const void* handle, const WeightView& w) { (void)handle, (void)w; }
  virtual void release_prepared(const void* handle) { (void)handle; }
  // Whether the prepared form of w holds all of w's values, so that products read nothing else
  // and the plain array may be released (the CPU backend's bf16 panels). Default: no.
  virtual bool prepared_replaces_data(const WeightView& w) const {
    (void)w;
    return false;
  }
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

  // ops (core/ops/<group>.h documents each)
  virtual void embed(const WeightView& emb, const int32_t* tokens, int64_t B, float* out) = 0;
  virtual void layer_norm(const float* x, VecArg w, VecArg b, float* y, int64_t B, int64_t n, float eps) = 0;
  virtual void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride,
                           int64_t layer_offset, const VecArg mu[6], float* out, int64_t B, int64_t C) = 0;
  virtual void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride,
                             int64_t layer_offset, VecArg mu, float* out, int64_t B, int64_t C) = 0;
  // Y[B, out] = X W^T (W [out, in]) or X P (x_times_p, P [in, out])
  virtual void linear(const WeightView& W, bool x_times_p, const float* X, float* Y, int64_t B) = 0;
  // n independent products of the same B rows (no item's Y is another's X or Y), each giving the
  // bits linear() and then, for an item with a low-rank correction, lowrank_add give it; a
  // backend may run them as one pass and fuse the corrections into the products (the CPU backend
  // adds rank-1 corrections of bf16 products as each output tile is finished). Default: one after
  // another.
  virtual void linear_group(const LinearItem* items, int n, int64_t B) {
    for (int i = 0; i < n; i++) {
      linear(*items[i].W, items[i].x_times_p, items[i].X, items[i].Y, B);
      if (items[i].lowrank) lowrank_add_item(items[i], B);
    }
  }
  // An item's low-rank correction (it.lowrank set) as lowrank_add over its finished Y.
  void lowrank_add_item(const LinearItem& it, int64_t B) {
    const LowRankArg& lr = *it.lowrank;
    lowrank_add(*lr.ns, lr.pid, it.W->rows, it.W->cols, it.x_times_p, it.X, it.Y, lr.members, B, lr.cache);
  }
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

  // ---- init: the random model init and the OpenES materialisation (core/ops/init.h) ----
  // out[j] = init_value(base, j, lo, hi) for j < n: fp32, or bf16 bits (dtype BF16; RNE).
  virtual void init_uniform(void* out, DType dtype, int64_t n, uint64_t base, float lo, float hi) = 0;
  // out[j] = base[j] + scale * noise_element(key, dist, j) for j < n; base and out both fp32 or
  // both bf16 bits (read widened, result rounded to nearest even); out may equal base.
  virtual void perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const void* base, void* out,
                            DType dtype, int64_t n) = 0;

  // ---- around the step: sampling, the ES update, the optimizers (core/ops/<group>.h documents each) ----
  // out[i] = sample_token(row i of logits [rows, V], p, seeds[i], counters[i]) (core/ops/sample.h);
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

// Buffers in a backend's memory owned together: released when the owner goes (or one by one).
class BackendBuffers {
 public:
  explicit BackendBuffers(Backend& be) : be_(be) {}
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
  Backend& be_;
  std::vector<void*> live_;
};

// ---- registry ------------------------------------------------------------------------------------
// A backend plugin registers a factory under its name at static-initialisation time (the CUDA
// library does so for "cuda"; core registers "cpu").
using BackendFactory = std::function<std::unique_ptr<Backend>()>;
void register_backend(const std::string& name, BackendFactory factory);
// The backend registered as `name`; InputError naming the registered ones when there is none.
std::unique_ptr<Backend> make_backend(const std::string& name);
bool backend_available(const std::string& name);
std::vector<std::string> backend_names();

}  // namespace eggroll
