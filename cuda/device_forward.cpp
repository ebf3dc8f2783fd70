// Device forward: CUDA backend of es/step_ops.h and the device-side containers.
// Uses only header-inline parts of eggroll_lib (OpStep, data members of Model / BatchState /
// ParamSelection), so eggroll_cuda has no link dependency on eggroll_lib.
#include "cuda/device_forward.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/dtype.h"

namespace eggroll::cuda {

// ---- backend ------------------------------------------------------------------------------------

CudaStepBackend::CudaStepBackend(void* stream) : stream_(stream), blas_(std::make_unique<Blas>(stream)) {}
CudaStepBackend::~CudaStepBackend() = default;

void* CudaStepBackend::alloc(size_t bytes) { return malloc_bytes(bytes); }
void CudaStepBackend::release(void* p) { free_bytes(p); }
void CudaStepBackend::upload(void* dst, const void* src, size_t bytes) { copy_to_device(dst, src, bytes, stream_); }
void CudaStepBackend::download(void* dst, const void* src, size_t bytes) { copy_to_host(dst, src, bytes, stream_); }
void CudaStepBackend::zero(void* dst, size_t bytes) { memset_zero(dst, bytes, stream_); }
void CudaStepBackend::copy(void* dst, const void* src, size_t bytes) { copy_device(dst, src, bytes, stream_); }
void CudaStepBackend::synchronize() { stream_synchronize(stream_); }

void CudaStepBackend::embed(const WeightView& emb, const int32_t* tokens, int64_t B, float* out) {
  embed_rows(emb.data, emb.dtype == WeightDType::BF16, tokens, B, emb.cols, out, stream_);
}
void CudaStepBackend::layer_norm(const float* x, VecArg w, VecArg b, float* y, int64_t B, int64_t n, float eps) {
  layer_norm_rows(x, w.p, w.stride, b.p, b.stride, y, B, n, eps, stream_);
}
void CudaStepBackend::time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride,
                                  int64_t layer_offset, const VecArg mu[6], float* out, int64_t B, int64_t C) {
  Mix6 m{};
  for (int q = 0; q < 6; q++) m.p[q] = mu[q].p, m.stride[q] = mu[q].stride;
  cuda::time_shift6(xa, state, slots, slot_stride, layer_offset, m, out, B, C, stream_);
}
void CudaStepBackend::channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride,
                                    int64_t layer_offset, VecArg mu, float* out, int64_t B, int64_t C) {
  cuda::channel_shift(xf, state, slots, slot_stride, layer_offset, mu.p, mu.stride, out, B, C, stream_);
}
void CudaStepBackend::linear(const WeightView& W, bool x_times_p, const float* X, float* Y, int64_t B) {
  const int64_t in = x_times_p ? W.rows : W.cols, out = x_times_p ? W.cols : W.rows;
  if (W.dtype == WeightDType::BF16)
    blas_->linear_bf16(static_cast<const uint16_t*>(W.data), x_times_p, X, Y, B, in, out);
  else
    blas_->linear_f32(W.f32(), x_times_p, X, Y, B, in, out);
}
void CudaStepBackend::tanh_(float* x, int64_t n) { tanh_inplace(x, n, stream_); }
void CudaStepBackend::sigmoid_(float* x, int64_t n) { sigmoid_inplace(x, n, stream_); }
void CudaStepBackend::decay(float* w, VecArg w0, int64_t B, int64_t C) { decay_rows(w, w0.p, w0.stride, B, C, stream_); }
void CudaStepBackend::sigmoid_bias(float* a, VecArg a0, int64_t B, int64_t C) {
  sigmoid_bias_rows(a, a0.p, a0.stride, B, C, stream_);
}
void CudaStepBackend::value_residual(float* v, const float* v_first, const float* t, VecArg v0, int64_t B,
                                     int64_t C) {
  value_residual_rows(v, v_first, t, v0.p, v0.stride, B, C, stream_);
}
void CudaStepBackend::kk_prepare(float* k, const float* a, VecArg k_k, VecArg k_a, float* kk, int64_t B, int64_t H) {
  cuda::kk_prepare(k, a, k_k.p, k_k.stride, k_a.p, k_a.stride, kk, B, H, stream_);
}
void CudaStepBackend::wkv7(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                           const float* r, const float* decay, const float* k, const float* v, const float* kk,
                           const float* a, float* y, int64_t B, int64_t H) {
  wkv7_rows(state, slots, slot_stride, layer_offset, r, decay, k, v, kk, a, y, B, H, stream_);
}
void CudaStepBackend::group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                                            VecArg r_k, VecArg lw, VecArg lb, int64_t B, int64_t H, float eps) {
  cuda::group_norm_bonus_gate(y, r, k, v, g, r_k.p, r_k.stride, lw.p, lw.stride, lb.p, lb.stride, B, H, eps, stream_);
}
void CudaStepBackend::add(float* x, const float* t, int64_t n) { add_inplace(x, t, n, stream_); }
void CudaStepBackend::relu_sq(float* x, int64_t n) { relu_sq_inplace(x, n, stream_); }
void CudaStepBackend::gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) {
  cuda::gather_rows(src, rows, n, C, dst, stream_);
}
void CudaStepBackend::gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) {
  cuda::gather_i32(src, idx, n, dst, stream_);
}
void CudaStepBackend::lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p,
                                  const float* X, float* Y, const int32_t* members, int64_t B, const float* cache) {
  cuda::lowrank_add(ns, pid, m, n, x_times_p, X, Y, members, B, cache, stream_);
}
void CudaStepBackend::embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n,
                                            const int32_t* tokens, float* X, const int32_t* members, int64_t B,
                                            const float* cache) {
  cuda::embedding_lowrank_add(ns, pid, m, n, tokens, X, members, B, cache, stream_);
}
void CudaStepBackend::vector_noise(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n,
                                   const int32_t* members, int64_t B, const float* cache, float* out) {
  vector_noise_rows(ns, pid, base, n, members, B, cache, out, stream_);
}
void CudaStepBackend::fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) {
  cuda::fill_noise_cache(ns, pid, len, pairs, out, stream_);
}
void CudaStepBackend::sample(const float* logits, int64_t rows, int64_t V, const SamplingParams& p,
                             const uint64_t* seeds, const uint64_t* counters, int32_t* out) {
  if (p.temperature <= 0.f) argmax_rows(logits, rows, V, out, stream_);
  else sample_rows(logits, rows, V, p.temperature, p.top_k, p.top_p, seeds, counters, out, stream_);
}
void CudaStepBackend::update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness,
                                     int64_t N, int64_t pair_begin, int64_t pairs, const float* cache, float* A_all,
                                     float* B_all) {
  cuda::update_factors(ns, pid, m, n, fitness, N, pair_begin, pairs, cache, A_all, B_all, stream_);
}
void CudaStepBackend::update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) {
  blas_->update_gemm(A_all, B_all, G, m, n, K);
}
void CudaStepBackend::vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                                      int64_t pair_begin, int64_t pairs, const float* cache, float* g) {
  cuda::vector_gradient(ns, pid, n, fitness, N, pair_begin, pairs, cache, g, stream_);
}
void CudaStepBackend::sum_squares(const float* x, int64_t n, double* out) { cuda::sum_squares(x, n, out, stream_); }
void CudaStepBackend::sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* out,
                                 uint16_t* w_bf16) {
  cuda::sgd_update(w, g, n, lr, scale, out, w_bf16, stream_);
}
void CudaStepBackend::adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1,
                                  double beta2, double eps, double weight_decay, bool adamw, double bc1, double bc2,
                                  double scale, double* out, uint16_t* w_bf16) {
  cuda::adam_update(w, g, m1, m2, n, lr, beta1, beta2, eps, weight_decay, adamw, bc1, bc2, scale, out, w_bf16,
                    stream_);
}

// ---- model -------------------------------------------------------------------------------------

DeviceModel::DeviceModel(const Model& m, WeightDType matrix_dtype, bool keep_f32_master) : dtype_(matrix_dtype) {
  w_.cfg = m.cfg;
  w_.emb = m.emb, w_.head = m.head, w_.ln0_w = m.ln0_w, w_.ln0_b = m.ln0_b, w_.lnout_w = m.lnout_w,
  w_.lnout_b = m.lnout_b;
  w_.layers = m.layers;
  const bool master = keep_f32_master && matrix_dtype == WeightDType::BF16;
  if (master) master_.assign(m.params.size(), nullptr);
  try {
    std::vector<uint16_t> bits;
    for (size_t pid = 0; pid < m.params.size(); pid++) {
      const Param& p = m.params[pid];
      const size_t n = p.numel();
      WeightView v;
      v.rows = p.rows, v.cols = p.cols;
      if (p.is_matrix && matrix_dtype == WeightDType::BF16) {
        bits.resize(n);
        for (size_t j = 0; j < n; j++) bits[j] = eggroll::f32_to_bf16(p.data[j]);
        void* d = malloc_bytes(n * 2);
        data_.push_back(d);
        copy_to_device(d, bits.data(), n * 2);
        bytes_ += n * 2;
        v.data = d, v.dtype = WeightDType::BF16;
        if (master) {
          void* f = malloc_bytes(n * 4);
          data_.push_back(f);
          copy_to_device(f, p.data.data(), n * 4);
          bytes_ += n * 4;
          master_[pid] = static_cast<float*>(f);
        }
      } else {
        void* d = malloc_bytes(n * 4);
        data_.push_back(d);
        copy_to_device(d, p.data.data(), n * 4);
        bytes_ += n * 4;
        v.data = d, v.dtype = WeightDType::F32;
      }
      w_.params.push_back(v);
    }
  } catch (...) {
    for (void* d : data_) free_bytes(d);
    throw;
  }
}

DeviceModel::~DeviceModel() {
  for (void* d : data_) free_bytes(d);
}

// ---- state -------------------------------------------------------------------------------------

DeviceState::DeviceState(const ModelConfig& cfg, int slots)
    : L_(cfg.n_layer), C_(cfg.n_embd), H_(cfg.n_head), slots_(slots) {
  if (slots <= 0) throw std::invalid_argument("DeviceState: slots must be > 0");
  try {
    att_x_ = static_cast<float*>(malloc_bytes(size_t(slots) * size_t(L_ * C_) * 4));
    ffn_x_ = static_cast<float*>(malloc_bytes(size_t(slots) * size_t(L_ * C_) * 4));
    wkv_ = static_cast<float*>(malloc_bytes(size_t(slots) * size_t(L_ * H_) * 4096 * 4));
  } catch (...) {
    free_bytes(att_x_), free_bytes(ffn_x_), free_bytes(wkv_);
    throw;
  }
  reset_all();
  synchronize();
}

DeviceState::~DeviceState() {
  free_bytes(att_x_);
  free_bytes(ffn_x_);
  free_bytes(wkv_);
}

void DeviceState::reset_all(void* stream) {
  memset_zero(att_x_, size_t(slots_) * size_t(L_ * C_) * 4, stream);
  memset_zero(ffn_x_, size_t(slots_) * size_t(L_ * C_) * 4, stream);
  memset_zero(wkv_, size_t(slots_) * size_t(L_ * H_) * 4096 * 4, stream);
}

void DeviceState::reset(int slot, void* stream) {
  if (slot < 0 || slot >= slots_) throw std::out_of_range("DeviceState::reset: slot out of range");
  memset_zero(att_x_ + size_t(slot) * size_t(L_ * C_), size_t(L_ * C_) * 4, stream);
  memset_zero(ffn_x_ + size_t(slot) * size_t(L_ * C_), size_t(L_ * C_) * 4, stream);
  memset_zero(wkv_ + size_t(slot) * size_t(L_ * H_) * 4096, size_t(L_ * H_) * 4096 * 4, stream);
}

void DeviceState::download(BatchState& h) const {
  if (h.members != slots_ || h.n_layer != L_ || h.n_embd != C_ || h.n_head != H_)
    throw std::invalid_argument("DeviceState::download: shape mismatch");
  copy_to_host(h.att_x.data(), att_x_, h.att_x.size() * 4);
  copy_to_host(h.ffn_x.data(), ffn_x_, h.ffn_x.size() * 4);
  copy_to_host(h.wkv.data(), wkv_, h.wkv.size() * 4);
}

void DeviceState::upload(const BatchState& h) {
  if (h.members != slots_ || h.n_layer != L_ || h.n_embd != C_ || h.n_head != H_)
    throw std::invalid_argument("DeviceState::upload: shape mismatch");
  copy_to_device(att_x_, h.att_x.data(), h.att_x.size() * 4);
  copy_to_device(ffn_x_, h.ffn_x.data(), h.ffn_x.size() * 4);
  copy_to_device(wkv_, h.wkv.data(), h.wkv.size() * 4);
}

// ---- perturbation ------------------------------------------------------------------------------

// ---- forward -------------------------------------------------------------------------------------

DeviceForward::DeviceForward(const DeviceModel& model, int64_t max_rows, void* stream)
    : be_(stream), max_rows_(max_rows) {
  op_ = std::make_unique<OpStep>(be_, model.weights(), max_rows);
  io_ = static_cast<int32_t*>(malloc_bytes(size_t(3 * max_rows) * sizeof(int32_t)));
}

DeviceForward::~DeviceForward() {
  op_.reset();
  free_bytes(io_);
}

void DeviceForward::step(std::span<const int32_t> tokens, std::span<const int> slots, DeviceState& st,
                         float* logits_dev, std::span<const int> members, const StepPerturbation* pert) {
  const int64_t B = int64_t(tokens.size());
  if (B == 0) return;
  if (B > max_rows_) throw std::invalid_argument("DeviceForward::step: more rows than max_rows");
  if (int64_t(slots.size()) != B || (!members.empty() && int64_t(members.size()) != B))
    throw std::invalid_argument("DeviceForward::step: tokens, slots and members differ in length");
  const int V = op_->weights().cfg.vocab;
  for (int32_t t : tokens)
    if (t < 0 || t >= V) throw std::invalid_argument("DeviceForward::step: token id out of range");
  for (int s : slots)
    if (s < 0 || s >= st.slots()) throw std::invalid_argument("DeviceForward::step: slot out of range");
  static_assert(sizeof(int) == sizeof(int32_t), "int must be 32-bit");
  be_.upload(io_, tokens.data(), size_t(B) * 4);
  be_.upload(io_ + max_rows_, slots.data(), size_t(B) * 4);
  const int32_t* mem = io_ + max_rows_;
  if (!members.empty()) {
    be_.upload(io_ + 2 * max_rows_, members.data(), size_t(B) * 4);
    mem = io_ + 2 * max_rows_;
  }
  op_->step(io_, io_ + max_rows_, mem, B, st.view(), logits_dev, nullptr, 0, pert);
}

void DeviceForward::step_device(const int32_t* tokens, const int32_t* slots, const int32_t* members, int64_t B,
                                DeviceState& st, float* logits_dev, const int32_t* logit_rows, int64_t n_logit_rows,
                                const StepPerturbation* pert) {
  op_->step(tokens, slots, members, B, st.view(), logits_dev, logit_rows, n_logit_rows, pert);
}

void eggroll_gradient_matrix(Blas& blas, const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n,
                             const float* fitness_dev, int64_t N, const float* cache, float* A_all, float* B_all,
                             float* G) {
  update_factors(ns, pid, m, n, fitness_dev, N, 0, N / 2, cache, A_all, B_all, blas.stream());
  blas.update_gemm(A_all, B_all, G, m, n, (N / 2) * ns.rank);
}

}  // namespace eggroll::cuda
