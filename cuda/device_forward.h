#pragma once
// The batched RWKV-7 step on the device: weights uploaded once (matrices fp32 or bf16, vectors
// fp32), states, tokens and logits on the device, optional EGGROLL perturbation with the noise
// generated on the device or read from a per-step device cache.
//
// The step itself is es/step_ops.h OpStep (the op sequence written once, checked on the CPU
// against rwkv/forward.cpp); this file provides its CUDA backend (cuda/cuda_ops.h kernels and
// cuBLAS) and the device-side containers. Nothing here includes a CUDA header.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cuda/cuda_ops.h"
#include "es/eggroll.h"
#include "es/step_ops.h"
#include "rwkv/forward.h"
#include "rwkv/model.h"

namespace eggroll::cuda {

// StepBackend on one stream of the current device.
class CudaStepBackend final : public StepBackend {
 public:
  explicit CudaStepBackend(void* stream = nullptr);
  ~CudaStepBackend() override;
  void* stream() const { return stream_; }
  Blas& blas() { return *blas_; }

  void* alloc(size_t bytes) override;
  void release(void* p) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void zero(void* dst, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void synchronize() override;
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
  int64_t reduce_doubles() const override { return kReduceBlocks + 1; }
  void sum_squares(const float* x, int64_t n, double* out) override;
  void sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* out,
                  uint16_t* w_bf16) override;
  void adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale, double* out,
                   uint16_t* w_bf16) override;

 private:
  void* stream_;
  std::unique_ptr<Blas> blas_;
};

// A model's parameters on the device. Matrices (Param::is_matrix) in `matrix_dtype`, vectors fp32.
// With bf16 matrices, `keep_f32_master` also keeps an fp32 copy of every matrix for the
// optimizer (the update is applied to it and the bf16 copy rewritten: see cuda::sgd_update).
class DeviceModel {
 public:
  DeviceModel(const Model& m, WeightDType matrix_dtype, bool keep_f32_master = false);
  // Random weights made on the device (no host copy; cuda/device_random.h): the values of
  // Model::random(cfg, seed), matrices in matrix_dtype (bf16: rounded to nearest even), no master.
  DeviceModel(const ModelConfig& cfg, uint64_t seed, WeightDType matrix_dtype);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  const StepWeights& weights() const { return w_; }
  WeightDType matrix_dtype() const { return dtype_; }
  float* master(int pid) const { return master_.empty() ? nullptr : master_[size_t(pid)]; }
  size_t bytes() const { return bytes_; }

 private:
  StepWeights w_;
  WeightDType dtype_;
  std::vector<void*> data_;
  std::vector<float*> master_;
  size_t bytes_ = 0;
};

// Recurrent states of `slots` members on the device (BatchState layout), zero-initialised.
class DeviceState {
 public:
  DeviceState(const ModelConfig& cfg, int slots);
  ~DeviceState();
  DeviceState(const DeviceState&) = delete;
  DeviceState& operator=(const DeviceState&) = delete;
  StateView view() const { return {att_x_, wkv_, ffn_x_}; }
  int slots() const { return slots_; }
  void reset_all(void* stream = nullptr);
  void reset(int slot, void* stream = nullptr);
  void download(BatchState& host) const;  // host must have the same shape
  void upload(const BatchState& host);

 private:
  int64_t L_, C_, H_;
  int slots_;
  float *att_x_ = nullptr, *wkv_ = nullptr, *ffn_x_ = nullptr;
};

// One RWKV-7 step for a batch on the device. Host-side entry: tokens/slots/members on the host
// (copied to device buffers), logits left on the device ([rows, V] device pointer, or nullptr).
class DeviceForward {
 public:
  DeviceForward(const DeviceModel& model, int64_t max_rows, void* stream = nullptr);
  ~DeviceForward();
  DeviceForward(const DeviceForward&) = delete;
  DeviceForward& operator=(const DeviceForward&) = delete;

  void step(std::span<const int32_t> tokens, std::span<const int> slots, DeviceState& st, float* logits_dev,
            std::span<const int> members = {}, const StepPerturbation* pert = nullptr);
  // Every pointer on the device (OpStep::step).
  void step_device(const int32_t* tokens, const int32_t* slots, const int32_t* members, int64_t B, DeviceState& st,
                   float* logits_dev, const int32_t* logit_rows = nullptr, int64_t n_logit_rows = 0,
                   const StepPerturbation* pert = nullptr);
  CudaStepBackend& backend() { return be_; }

 private:
  CudaStepBackend be_;
  std::unique_ptr<OpStep> op_;
  int64_t max_rows_;
  int32_t* io_ = nullptr;  // tokens | slots | members, 3 * max_rows
};

// g = (1/sqrt(N)) sum_i f_i E_i of matrix pid (m x n) on the device: the operands (A_all m x K,
// B_all n x K, K = N/2 * rank; scratch supplied by the caller) and one GEMM into G [m, n].
void eggroll_gradient_matrix(Blas& blas, const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n,
                             const float* fitness_dev, int64_t N, const float* cache, float* A_all, float* B_all,
                             float* G);

}  // namespace eggroll::cuda
