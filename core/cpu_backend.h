#pragma once
// The CPU backend: host memory, the reference ops of core/ops/ and the core/gemm.h products.
#include "core/backend.h"

namespace eggroll {

// The reference backend: host memory, core/ops/ ops, core/gemm.h products (fp32 weights;
// prepared matrices are pre-packed GEMM panels, which give the same bits as the unpacked product)
// and core/gemm_bf16.h products (bf16 weights, stored only as prepared panels: the same bits as
// ref::linear_bf16).
class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  const void* prepare_weight(const WeightView& w, bool x_times_p) override;
  bool prepared_replaces_data(const WeightView& w) const override;
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
  void linear_group(const LinearItem* items, int n, int64_t B) override;
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
  void init_uniform(void* out, DType dtype, int64_t n, uint64_t base, float lo, float hi) override;
  void perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const void* base, void* out, DType dtype,
                    int64_t n) override;
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

}  // namespace eggroll
