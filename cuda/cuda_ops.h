#pragma once
// CUDA backend ops: host wrappers that launch one kernel each (flashinfer style: raw device
// pointers in, no framework types inside; plain structs for small parameter packs).
// This header includes no CUDA header: streams are passed as `void*` (a cudaStream_t; nullptr =
// the legacy default stream). Every wrapper checks the launch and throws std::runtime_error
// ("CUDA error in <op>: ...") on failure; kernels run asynchronously on the stream.
//
// Each op has a CPU reference of the same name in core/ops/<group>.h (namespace eggroll::ref),
// and its kernel lives in cuda/<group>.cu (groups: layer, wkv7, linear, noise, update, sample,
// init; device and memory management in cuda/device.cu). shape_fitness's reference is
// es/fitness.h (not a backend op: the trainer shapes fitness on the host). The op table
// (tests/test_backend_ops.cpp) runs every op against its reference.
//
// Shapes: B rows (generations), C = n_embd, H = C / 64 heads; row-major. A vector argument
// (p, stride) reads row i at p + i * stride (stride 0 = one shared vector). bf16 arrays are raw
// bits (uint16_t), as core/dtype.h stores them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/noise.h"

namespace eggroll::cuda {

// ---- device and memory (cuda/device.cu) -------------------------------------------------------------------
// Number of usable CUDA devices (0 when there is no driver or no GPU; never throws).
int device_count();
std::string device_name(int device);
void set_device(int device);  // cudaSetDevice (throws on failure)
int current_device();
size_t device_free_memory();  // bytes free on the current device
void synchronize();           // cudaDeviceSynchronize, throws on an earlier asynchronous error

void* malloc_bytes(size_t bytes);  // cudaMalloc (throws on failure)
void free_bytes(void* p);          // cudaFree (nullptr ok)
void copy_to_device(void* dst, const void* host, size_t bytes, void* stream = nullptr);
void copy_to_host(void* host, const void* src, size_t bytes, void* stream = nullptr);
void copy_device(void* dst, const void* src, size_t bytes, void* stream = nullptr);
void memset_zero(void* dst, size_t bytes, void* stream = nullptr);
void stream_synchronize(void* stream);

// Typed helpers for tests.
float* to_device(const float* host, size_t n);
void to_host(const float* dev, float* host, size_t n);
void free_device(float* dev);

// ---- layer (cuda/layer.cu; core/ops/layer.h) + wkv7 (cuda/wkv7.cu; core/ops/wkv7.h) -----------------------
// out[i] = emb[tokens[i]] (fp32 table, or bf16 bits when emb_bf16)
void embed_rows(const void* emb, bool emb_bf16, const int32_t* tokens, int64_t B, int64_t C, float* out,
                void* stream = nullptr);
// y[rows, n] = LayerNorm(x) * w + b: one block per row, fp32 statistics (two passes).
void layer_norm_rows(const float* x, const float* w, int64_t w_stride, const float* b, int64_t b_stride, float* y,
                     int64_t rows, int64_t n, float eps, void* stream = nullptr);
// Time-mix token shift (6 mixes r,w,k,v,a,g into out [6][B][C]); updates the state rows.
struct Mix6 {
  const float* p[6];
  int64_t stride[6];
};
void time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                 const Mix6& mu, float* out, int64_t B, int64_t C, void* stream = nullptr);
void channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                   const float* mu, int64_t mu_stride, float* out, int64_t B, int64_t C, void* stream = nullptr);
void tanh_inplace(float* x, int64_t n, void* stream = nullptr);
void sigmoid_inplace(float* x, int64_t n, void* stream = nullptr);
void decay_rows(float* w, const float* w0, int64_t w0_stride, int64_t B, int64_t C, void* stream = nullptr);
void sigmoid_bias_rows(float* a, const float* a0, int64_t a0_stride, int64_t B, int64_t C, void* stream = nullptr);
void value_residual_rows(float* v, const float* v_first, const float* t, const float* v0, int64_t v0_stride,
                         int64_t B, int64_t C, void* stream = nullptr);
// kk = normalize(k * k_k) per head; k *= 1 + (a - 1) * k_a. One warp per (row, head).
void kk_prepare(float* k, const float* a, const float* k_k, int64_t kk_stride, const float* k_a, int64_t ka_stride,
                float* kk, int64_t B, int64_t H, void* stream = nullptr);
// WKV-7 single-token update, fp32 state; one block of 4 warps per (row, head), each warp owning
// 16 state rows with coalesced row reads. state of row i: state + slots[i] * slot_stride +
// layer_offset ([H][64][64]); slots == nullptr: row i uses slot i.
void wkv7_rows(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset, const float* r,
               const float* decay, const float* k, const float* v, const float* kk, const float* a, float* y,
               int64_t B, int64_t H, void* stream = nullptr);
// GroupNorm per head (eps 64e-5 in the model) fused with the bonus term and the gate, in place.
void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                           const float* r_k, int64_t rk_stride, const float* lw, int64_t lw_stride, const float* lb,
                           int64_t lb_stride, int64_t B, int64_t H, float eps, void* stream = nullptr);
void add_inplace(float* x, const float* t, int64_t n, void* stream = nullptr);
void relu_sq_inplace(float* x, int64_t n, void* stream = nullptr);
void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst, void* stream = nullptr);
void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst, void* stream = nullptr);
// fp32 -> bf16 bits (round to nearest even), and back.
void f32_to_bf16(const float* x, uint16_t* y, int64_t n, void* stream = nullptr);
void bf16_to_f32(const uint16_t* x, float* y, int64_t n, void* stream = nullptr);

// ---- linear: cuBLAS products (cuda/linear.cu; core/ops/linear.h) ------------------------------------------
// A cuBLAS handle bound to a stream, with a scratch buffer for bf16 activations. fp32 products
// use CUBLAS_COMPUTE_32F in the default math mode (never TF32 with that compute type); bf16 ones
// take bf16 x bf16 operands with fp32 accumulation and fp32 output (cublasGemmEx). Per-row
// results may depend on the batch size (cuBLAS picks kernels by shape), unlike core/gemm.h.
class Blas {
 public:
  explicit Blas(void* stream = nullptr);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  void* stream() const { return stream_; }
  void set_stream(void* stream);

  // Y[B, out] = X[B, in] W^T (W [out, in] row-major), or x_times_p: Y = X P (P [in, out]).
  void linear_f32(const float* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out);
  // Same with W in bf16: X is rounded to bf16 into the scratch buffer first.
  void linear_bf16(const uint16_t* W, bool x_times_p, const float* X, float* Y, int64_t B, int64_t in, int64_t out);
  // The update GEMM: G[m, n] = A_all[m, K] B_all[n, K]^T (fp32; K = pairs * rank).
  void update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K);

 private:
  void* handle_ = nullptr;  // cublasHandle_t
  void* stream_ = nullptr;
  uint16_t* scratch_ = nullptr;
  size_t scratch_elems_ = 0;
};

// ---- noise (cuda/noise.cu; core/ops/noise.h) --------------------------------------------------------------
// Largest rank the device correction kernels take (per-thread accumulators); larger: throws.
constexpr int kMaxDeviceRank = 16;
// Philox raw blocks: out[4i..] = philox4x32_10(counters[4i..], keys[2i..]) on the device.
void philox_blocks(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out, void* stream = nullptr);
// out[j] = noise_element(key, dist, start + j) for j < count (one Philox block per thread).
void fill_noise(const NoiseKey& key, NoiseDist dist, uint64_t start, int64_t count, float* out,
                void* stream = nullptr);
// The per-step noise cache of one parameter: out[pair][j], len elements per pair.
void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out,
                      void* stream = nullptr);
// Low-rank correction Y[i] += c_i ... (ref::lowrank_add); one block per row; factors generated
// by Philox on the device (cache == nullptr) or read from the per-step cache.
void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X, float* Y,
                 const int32_t* members, int64_t B, const float* cache, void* stream = nullptr);
void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* tokens,
                           float* X, const int32_t* members, int64_t B, const float* cache, void* stream = nullptr);
// Full-rank vector noise: out[i] = base + s_i sigma eps_i.
void vector_noise_rows(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* members,
                       int64_t B, const float* cache, float* out, void* stream = nullptr);

// ---- update and optimizers (cuda/update.cu; core/ops/update.h) --------------------------------------------
// Operands of the update GEMM from pairs [pair_begin, pair_begin + pairs) (ref::update_factors);
// fitness [N] on the device.
void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness, int64_t N,
                    int64_t pair_begin, int64_t pairs, const float* cache, float* A_all, float* B_all,
                    void* stream = nullptr);
// Full-rank vector gradient (ref::vector_gradient).
void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                     int64_t pair_begin, int64_t pairs, const float* cache, float* g, void* stream = nullptr);
// Reductions run on a fixed grid of kReduceBlocks blocks whose partial sums are then added in a
// fixed order, so results are deterministic. Their output array (device) must hold
// kReduceBlocks + 1 doubles: out[0] is the result, out[1..] the partial sums.
constexpr int kReduceBlocks = 1024;
// Sum of squares of x[n] in double into out[0].
void sum_squares(const float* x, int64_t n, double* out, void* stream = nullptr);
// Optimizer steps on one array (ref::sgd_update / ref::adam_update), arithmetic in double as the
// CPU reference ops. sq_out[0] receives the sum of squares of the applied change. w_bf16 (optional):
// the bf16 copy of w that the forward reads, rewritten from the updated fp32 master.
void sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* sq_out,
                uint16_t* w_bf16 = nullptr, void* stream = nullptr);
void adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale, double* sq_out,
                 uint16_t* w_bf16 = nullptr, void* stream = nullptr);

// ---- fitness (cuda/update.cu; es/fitness.h) ---------------------------------------------------------------
// shape_fitness (es/fitness.h) on the device for ZScore (rank = false) or CenteredRank (rank =
// true): rewards [G * P] (generation j -> direction j % G), non-finite rewards replaced by the
// worst finite one; writes fitness [G] and direction_score [G] (double). One block.
void shape_fitness(const float* rewards, int64_t G, int64_t P, bool rank, float* fitness, double* direction_score,
                   void* stream = nullptr);

// ---- sample (cuda/sample.cu; core/ops/sample.h) -----------------------------------------------------------
// Greedy: out[i] = argmax of row i (lowest id on ties, NaN ignored, all-NaN row -> 0). One block per row.
void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* out, void* stream = nullptr);
// core/ops/sample.h sample_token per row (temperature, top-k, top-p) with the per-row stream
// (seeds[i], counters[i]) (device arrays); the same uniform01 draw as the CPU. The candidate set
// and the top-p / draw cut-offs are found by radix selection over (logit, -id) keys instead of a
// sort, so a row's token equals the CPU's except when a cumulative sum lands within double
// rounding of a cut-off.
void sample_rows(const float* logits, int64_t rows, int64_t V, float temperature, int top_k, float top_p,
                 const uint64_t* seeds, const uint64_t* counters, int32_t* out, void* stream = nullptr);

}  // namespace eggroll::cuda
