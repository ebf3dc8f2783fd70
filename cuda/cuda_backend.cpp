// The CUDA backend (cuda/cuda_backend.h) and its registration as "cuda".
#include "cuda/cuda_backend.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/dtype.h"
#include "cuda/init.h"

namespace eggroll::cuda {

// ---- backend ------------------------------------------------------------------------------------

CudaBackend::CudaBackend(void* stream) : stream_(stream), blas_(std::make_unique<Blas>(stream)) {}
CudaBackend::~CudaBackend() = default;

void* CudaBackend::alloc(size_t bytes) { return malloc_bytes(bytes); }
void CudaBackend::release(void* p) { free_bytes(p); }
void CudaBackend::upload(void* dst, const void* src, size_t bytes) { copy_to_device(dst, src, bytes, stream_); }
void CudaBackend::download(void* dst, const void* src, size_t bytes) { copy_to_host(dst, src, bytes, stream_); }
void CudaBackend::zero(void* dst, size_t bytes) { memset_zero(dst, bytes, stream_); }
void CudaBackend::copy(void* dst, const void* src, size_t bytes) { copy_device(dst, src, bytes, stream_); }
void CudaBackend::synchronize() { stream_synchronize(stream_); }

void CudaBackend::embed(const WeightView& emb, const int32_t* tokens, int64_t B, float* out) {
  embed_rows(emb.data, emb.dtype == DType::BF16, tokens, B, emb.cols, out, stream_);
}
void CudaBackend::layer_norm(const float* x, VecArg w, VecArg b, float* y, int64_t B, int64_t n, float eps) {
  layer_norm_rows(x, w.p, w.stride, b.p, b.stride, y, B, n, eps, stream_);
}
void CudaBackend::time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride,
                                  int64_t layer_offset, const VecArg mu[6], float* out, int64_t B, int64_t C) {
  Mix6 m{};
  for (int q = 0; q < 6; q++) m.p[q] = mu[q].p, m.stride[q] = mu[q].stride;
  cuda::time_shift6(xa, state, slots, slot_stride, layer_offset, m, out, B, C, stream_);
}
void CudaBackend::channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride,
                                    int64_t layer_offset, VecArg mu, float* out, int64_t B, int64_t C) {
  cuda::channel_shift(xf, state, slots, slot_stride, layer_offset, mu.p, mu.stride, out, B, C, stream_);
}
void CudaBackend::linear(const WeightView& W, bool x_times_p, const float* X, float* Y, int64_t B) {
  const int64_t in = x_times_p ? W.rows : W.cols, out = x_times_p ? W.cols : W.rows;
  if (W.dtype == DType::BF16)
    blas_->linear_bf16(static_cast<const uint16_t*>(W.data), x_times_p, X, Y, B, in, out);
  else
    blas_->linear_f32(W.f32(), x_times_p, X, Y, B, in, out);
}
void CudaBackend::tanh_(float* x, int64_t n) { tanh_inplace(x, n, stream_); }
void CudaBackend::sigmoid_(float* x, int64_t n) { sigmoid_inplace(x, n, stream_); }
void CudaBackend::decay(float* w, VecArg w0, int64_t B, int64_t C) { decay_rows(w, w0.p, w0.stride, B, C, stream_); }
void CudaBackend::sigmoid_bias(float* a, VecArg a0, int64_t B, int64_t C) {
  sigmoid_bias_rows(a, a0.p, a0.stride, B, C, stream_);
}
void CudaBackend::value_residual(float* v, const float* v_first, const float* t, VecArg v0, int64_t B,
                                     int64_t C) {
  value_residual_rows(v, v_first, t, v0.p, v0.stride, B, C, stream_);
}
void CudaBackend::kk_prepare(float* k, const float* a, VecArg k_k, VecArg k_a, float* kk, int64_t B, int64_t H) {
  cuda::kk_prepare(k, a, k_k.p, k_k.stride, k_a.p, k_a.stride, kk, B, H, stream_);
}
void CudaBackend::wkv7(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                           const float* r, const float* decay, const float* k, const float* v, const float* kk,
                           const float* a, float* y, int64_t B, int64_t H) {
  wkv7_rows(state, slots, slot_stride, layer_offset, r, decay, k, v, kk, a, y, B, H, stream_);
}
void CudaBackend::group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                                            VecArg r_k, VecArg lw, VecArg lb, int64_t B, int64_t H, float eps) {
  cuda::group_norm_bonus_gate(y, r, k, v, g, r_k.p, r_k.stride, lw.p, lw.stride, lb.p, lb.stride, B, H, eps, stream_);
}
void CudaBackend::add(float* x, const float* t, int64_t n) { add_inplace(x, t, n, stream_); }
void CudaBackend::relu_sq(float* x, int64_t n) { relu_sq_inplace(x, n, stream_); }
void CudaBackend::gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) {
  cuda::gather_rows(src, rows, n, C, dst, stream_);
}
void CudaBackend::gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) {
  cuda::gather_i32(src, idx, n, dst, stream_);
}
void CudaBackend::lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p,
                                  const float* X, float* Y, const int32_t* members, int64_t B, const float* cache) {
  cuda::lowrank_add(ns, pid, m, n, x_times_p, X, Y, members, B, cache, stream_);
}
void CudaBackend::embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n,
                                            const int32_t* tokens, float* X, const int32_t* members, int64_t B,
                                            const float* cache) {
  cuda::embedding_lowrank_add(ns, pid, m, n, tokens, X, members, B, cache, stream_);
}
void CudaBackend::vector_noise(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n,
                                   const int32_t* members, int64_t B, const float* cache, float* out) {
  vector_noise_rows(ns, pid, base, n, members, B, cache, out, stream_);
}
void CudaBackend::fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) {
  cuda::fill_noise_cache(ns, pid, len, pairs, out, stream_);
}
void CudaBackend::init_uniform(void* out, DType dtype, int64_t n, uint64_t base, float lo, float hi) {
  cuda::init_uniform(out, dtype == DType::BF16, n, base, lo, hi, stream_);
}
void CudaBackend::perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const void* base, void* out,
                               DType dtype, int64_t n) {
  cuda::perturb_full(key, dist, scale, base, out, dtype == DType::BF16, n, stream_);
}
void CudaBackend::sample(const float* logits, int64_t rows, int64_t V, const SamplingParams& p,
                             const uint64_t* seeds, const uint64_t* counters, int32_t* out) {
  if (p.temperature <= 0.f) argmax_rows(logits, rows, V, out, stream_);
  else sample_rows(logits, rows, V, p.temperature, p.top_k, p.top_p, seeds, counters, out, stream_);
}
void CudaBackend::update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness,
                                     int64_t N, int64_t pair_begin, int64_t pairs, const float* cache, float* A_all,
                                     float* B_all) {
  cuda::update_factors(ns, pid, m, n, fitness, N, pair_begin, pairs, cache, A_all, B_all, stream_);
}
void CudaBackend::update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) {
  blas_->update_gemm(A_all, B_all, G, m, n, K);
}
void CudaBackend::vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                                      int64_t pair_begin, int64_t pairs, const float* cache, float* g) {
  cuda::vector_gradient(ns, pid, n, fitness, N, pair_begin, pairs, cache, g, stream_);
}
void CudaBackend::sum_squares(const float* x, int64_t n, double* out) { cuda::sum_squares(x, n, out, stream_); }
void CudaBackend::sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* out,
                                 uint16_t* w_bf16) {
  cuda::sgd_update(w, g, n, lr, scale, out, w_bf16, stream_);
}
void CudaBackend::adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1,
                                  double beta2, double eps, double weight_decay, bool adamw, double bc1, double bc2,
                                  double scale, double* out, uint16_t* w_bf16) {
  cuda::adam_update(w, g, m1, m2, n, lr, beta1, beta2, eps, weight_decay, adamw, bc1, bc2, scale, out, w_bf16,
                    stream_);
}

// ---- registration ------------------------------------------------------------------------------

namespace {
// make_backend("cuda"): a backend on the legacy default stream of the current device. Linked
// whole-archive (CMakeLists.txt), so this initialiser runs in every program that links the library.
const bool kRegistered = [] {
  register_backend("cuda", [] { return std::unique_ptr<Backend>(new CudaBackend()); });
  return true;
}();
}  // namespace

}  // namespace eggroll::cuda
