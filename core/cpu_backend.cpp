#include "core/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "core/dtype.h"
#include "core/error.h"
#include "core/registry.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/parallel.h"
#include "core/ops/init.h"
#include "core/ops/layer.h"
#include "core/ops/linear.h"
#include "core/ops/noise.h"
#include "core/ops/sample.h"
#include "core/ops/update.h"
#include "core/ops/wkv7.h"

namespace eggroll {

// ---- CPU backend --------------------------------------------------------------------------------

void* CpuBackend::alloc(size_t bytes) {
  void* p = std::malloc(bytes ? bytes : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void CpuBackend::release(void* p) { std::free(p); }
void CpuBackend::upload(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::download(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::zero(void* dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}
void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}

void CpuBackend::embed(const WeightView& emb, const int32_t* tokens, int64_t B, float* out) {
  const bool bf = emb.dtype == DType::BF16;
  ref::embed_rows(bf ? nullptr : emb.f32(), bf ? static_cast<const uint16_t*>(emb.data) : nullptr, tokens, B,
                  emb.cols, out);
}
void CpuBackend::layer_norm(const float* x, VecArg w, VecArg b, float* y, int64_t B, int64_t n, float eps) {
  ref::layer_norm_rows(x, w.p, w.stride, b.p, b.stride, y, B, n, eps);
}
void CpuBackend::time_shift6(const float* xa, float* state, const int32_t* slots, int64_t slot_stride,
                                 int64_t layer_offset, const VecArg mu[6], float* out, int64_t B, int64_t C) {
  const float* p[6];
  int64_t s[6];
  for (int q = 0; q < 6; q++) p[q] = mu[q].p, s[q] = mu[q].stride;
  ref::time_shift6(xa, state, slots, slot_stride, layer_offset, p, s, out, B, C);
}
void CpuBackend::channel_shift(const float* xf, float* state, const int32_t* slots, int64_t slot_stride,
                                   int64_t layer_offset, VecArg mu, float* out, int64_t B, int64_t C) {
  ref::channel_shift(xf, state, slots, slot_stride, layer_offset, mu.p, mu.stride, out, B, C);
}
// A prepared matrix: fp32 GEMM panels (y = W x only; x P products read P as it is) or bf16 panels
// (both directions; they replace the plain bf16 array).
namespace {
struct CpuPrepared {
  bool x_times_p = false, is_bf16 = false;
  PackedWeights f32;
  PackedBf16 bf16;
};
int64_t product_in(const WeightView& w, bool x_times_p) { return x_times_p ? w.rows : w.cols; }
int64_t product_out(const WeightView& w, bool x_times_p) { return x_times_p ? w.cols : w.rows; }
}  // namespace
const void* CpuBackend::prepare_weight(const WeightView& w, bool x_times_p) {
  const int64_t in = product_in(w, x_times_p), out = product_out(w, x_times_p);
  auto* h = new CpuPrepared;
  h->x_times_p = x_times_p;
  if (w.dtype == DType::BF16) {
    h->is_bf16 = true;
    h->bf16 = pack_bf16(static_cast<const uint16_t*>(w.data), in, out, x_times_p);
  } else if (!x_times_p) {
    h->f32 = pack_weights(w.f32(), in, out);
  } else {
    delete h;
    return nullptr;
  }
  return h;
}
bool CpuBackend::prepared_replaces_data(const WeightView& w) const { return w.dtype == DType::BF16; }
void CpuBackend::refresh_prepared(const void* handle, const WeightView& w) {
  if (!handle) return;
  auto* h = const_cast<CpuPrepared*>(static_cast<const CpuPrepared*>(handle));
  const int64_t in = product_in(w, h->x_times_p), out = product_out(w, h->x_times_p);
  if (h->is_bf16) {
    if (h->bf16.in != in || h->bf16.out != out) throw std::logic_error("refresh_prepared: shape changed");
    if (w.dtype == DType::BF16) repack_bf16(h->bf16, static_cast<const uint16_t*>(w.data), h->x_times_p);
    else repack_bf16(h->bf16, w.f32(), h->x_times_p);
  } else {
    if (w.dtype != DType::F32) throw std::logic_error("refresh_prepared: an fp32 packing given bf16 values");
    h->f32 = pack_weights(w.f32(), in, out);
  }
}
void CpuBackend::release_prepared(const void* handle) { delete static_cast<const CpuPrepared*>(handle); }

void CpuBackend::linear(const WeightView& W, bool x_times_p, const float* X, float* Y, int64_t B) {
  const int64_t in = product_in(W, x_times_p), out = product_out(W, x_times_p);
  if (const auto* h = static_cast<const CpuPrepared*>(W.prepared)) {
    if (h->x_times_p != x_times_p) throw std::logic_error("CpuBackend::linear: prepared for the other product");
    if (h->is_bf16) return gemm_bf16(X, h->bf16, Y, B);
    return gemm_packed(X, h->f32, Y, B);
  }
  if (!W.data) throw std::logic_error("CpuBackend::linear: a matrix with neither values nor a prepared form");
  if (W.dtype == DType::BF16)
    ref::linear_bf16(static_cast<const uint16_t*>(W.data), x_times_p, X, Y, B, in, out);
  else
    ref::linear_f32(W.f32(), x_times_p, X, Y, B, in, out);
}
void CpuBackend::linear_group(const LinearItem* items, int n, int64_t B) {
  // Products on bf16 panels share one pass over the threads (core/gemm_bf16.h), their rank-1
  // corrections added by the GEMM as it finishes each output tile (ref::lowrank_rank1_terms gives
  // each row's scale and factor first): Y is not read back for them. Regenerated factors are
  // then held for the whole product (one array per pair), up to kFusedFactorBytes per group;
  // past that (a perturbed head over the vocabulary), and for any other correction, lowrank_add
  // runs after the products, a pair's factors generated as its rows are corrected. Same bits
  // either way. With the AMX kernel the corrections stay a pass of their own: an earlier fused
  // form measured slower on the AMX machine (README, "Other machines"). Products not on bf16
  // panels run alone.
  constexpr int64_t kFusedFactorBytes = int64_t(64) << 20;
  const Bf16Kernel kernel = best_bf16_kernel();
  const bool fuse = kernel != Bf16Kernel::Amx;
  int64_t factor_bytes = 0;
  struct Rank1 {
    std::vector<float> factors, t;
    std::vector<const float*> out;
  };
  thread_local std::vector<Rank1> rank1;  // per item; kept between calls (regenerated factors)
  if (rank1.size() < size_t(n)) rank1.resize(size_t(n));
  std::vector<Bf16Product> bf;
  std::vector<const LinearItem*> unfused;
  for (int i = 0; i < n; i++) {
    const LinearItem& it = items[i];
    const auto* h = static_cast<const CpuPrepared*>(it.W->prepared);
    if (!(h && h->is_bf16 && h->x_times_p == it.x_times_p)) {
      linear(*it.W, it.x_times_p, it.X, it.Y, B);
      if (it.lowrank) lowrank_add_item(it, B);
      continue;
    }
    Bf16Product p{it.X, &h->bf16, it.Y};
    const int64_t held = !it.lowrank || it.lowrank->cache
                             ? 0
                             : ref::lowrank_pair_runs(it.lowrank->members, B) * (it.W->rows + it.W->cols) * 4;
    if (fuse && it.lowrank && it.lowrank->ns->rank == 1 && factor_bytes + held <= kFusedFactorBytes) {
      factor_bytes += held;
      const LowRankArg& lr = *it.lowrank;
      Rank1& r = rank1[size_t(i)];
      r.t.resize(size_t(B));
      r.out.resize(size_t(B));
      ref::lowrank_rank1_terms(*lr.ns, lr.pid, it.W->rows, it.W->cols, it.x_times_p, it.X, lr.members, B, lr.cache,
                               r.factors, r.out.data(), r.t.data());
      p.rank1_out = r.out.data();
      p.rank1_t = r.t.data();
    } else if (it.lowrank) {
      unfused.push_back(&it);
    }
    bf.push_back(p);
  }
  if (!bf.empty()) gemm_bf16_group(bf.data(), int(bf.size()), B, kernel);
  for (const LinearItem* it : unfused) lowrank_add_item(*it, B);
}
void CpuBackend::tanh_(float* x, int64_t n) { ref::tanh_inplace(x, n); }
void CpuBackend::sigmoid_(float* x, int64_t n) { ref::sigmoid_inplace(x, n); }
void CpuBackend::decay(float* w, VecArg w0, int64_t B, int64_t C) { ref::decay_rows(w, w0.p, w0.stride, B, C); }
void CpuBackend::sigmoid_bias(float* a, VecArg a0, int64_t B, int64_t C) {
  ref::sigmoid_bias_rows(a, a0.p, a0.stride, B, C);
}
void CpuBackend::value_residual(float* v, const float* v_first, const float* t, VecArg v0, int64_t B,
                                   int64_t C) {
  ref::value_residual_rows(v, v_first, t, v0.p, v0.stride, B, C);
}
void CpuBackend::kk_prepare(float* k, const float* a, VecArg k_k, VecArg k_a, float* kk, int64_t B, int64_t H) {
  ref::kk_prepare(k, a, k_k.p, k_k.stride, k_a.p, k_a.stride, kk, B, H);
}
void CpuBackend::wkv7(float* state, const int32_t* slots, int64_t slot_stride, int64_t layer_offset,
                          const float* r, const float* decay, const float* k, const float* v, const float* kk,
                          const float* a, float* y, int64_t B, int64_t H) {
  wkv7_rows_cpu(state, slots, slot_stride, layer_offset, r, decay, k, v, kk, a, y, B, H);
}
void CpuBackend::group_norm_bonus_gate(float* y, const float* r, const float* k, const float* v, const float* g,
                                           VecArg r_k, VecArg lw, VecArg lb, int64_t B, int64_t H, float eps) {
  ref::group_norm_bonus_gate(y, r, k, v, g, r_k.p, r_k.stride, lw.p, lw.stride, lb.p, lb.stride, B, H, eps);
}
void CpuBackend::add(float* x, const float* t, int64_t n) { ref::add_inplace(x, t, n); }
void CpuBackend::relu_sq(float* x, int64_t n) { ref::relu_sq_inplace(x, n); }
void CpuBackend::gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) {
  ref::gather_rows(src, rows, n, C, dst);
}
void CpuBackend::gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) {
  ref::gather_i32(src, idx, n, dst);
}
void CpuBackend::lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p,
                                 const float* X, float* Y, const int32_t* members, int64_t B, const float* cache) {
  ref::lowrank_add(ns, pid, m, n, x_times_p, X, Y, members, B, cache);
}
void CpuBackend::embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n,
                                           const int32_t* tokens, float* X, const int32_t* members, int64_t B,
                                           const float* cache) {
  ref::embedding_lowrank_add(ns, pid, m, n, tokens, X, members, B, cache);
}
void CpuBackend::vector_noise(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n,
                                  const int32_t* members, int64_t B, const float* cache, float* out) {
  ref::vector_noise_rows(ns, pid, base, n, members, B, cache, out);
}
void CpuBackend::fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) {
  ref::fill_noise_cache(ns, pid, len, pairs, out);
}
void CpuBackend::init_uniform(void* out, DType dtype, int64_t n, uint64_t base, float lo, float hi) {
  if (dtype == DType::F32) return ref::init_uniform(static_cast<float*>(out), n, base, lo, hi);
  uint16_t* o = static_cast<uint16_t*>(out);
  for (int64_t j = 0; j < n; j++) o[j] = f32_to_bf16(init_value(base, uint64_t(j), lo, hi));
}
void CpuBackend::perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const void* base, void* out,
                              DType dtype, int64_t n) {
  // ref::perturb_full's arithmetic, with the noise made by fill_noise (vectorised) in chunks.
  constexpr int64_t kChunk = 4096;
  parallel_for((n + kChunk - 1) / kChunk, 1, [&](int64_t c) {
    const int64_t c0 = c * kChunk;
    alignas(64) float eps[kChunk];
    const int64_t len = std::min(kChunk, n - c0);
    fill_noise(key, dist, size_t(c0), size_t(len), eps);
    if (dtype == DType::F32) {
      const float* b = static_cast<const float*>(base) + c0;
      float* o = static_cast<float*>(out) + c0;
      for (int64_t j = 0; j < len; j++) o[j] = ref::perturb_element(b[j], scale, eps[j]);
    } else {
      const uint16_t* b = static_cast<const uint16_t*>(base) + c0;
      uint16_t* o = static_cast<uint16_t*>(out) + c0;
      for (int64_t j = 0; j < len; j++) o[j] = f32_to_bf16(ref::perturb_element(bf16_to_f32(b[j]), scale, eps[j]));
    }
  });
}
void CpuBackend::sample(const float* logits, int64_t rows, int64_t V, const SamplingParams& p,
                            const uint64_t* seeds, const uint64_t* counters, int32_t* out) {
  if (p.temperature <= 0.f) ref::argmax_rows(logits, rows, V, out);
  else ref::sample_rows(logits, rows, V, p.temperature, p.top_k, p.top_p, seeds, counters, out);
}
void CpuBackend::update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness,
                                    int64_t N, int64_t pair_begin, int64_t pairs, const float* cache, float* A_all,
                                    float* B_all) {
  ref::update_factors(ns, pid, m, n, fitness, N, pair_begin, pairs, cache, A_all, B_all);
}
void CpuBackend::update_gemm(const float* A_all, const float* B_all, float* G, int64_t m, int64_t n, int64_t K) {
  ref::linear_f32(B_all, false, A_all, G, m, K, n);
}
void CpuBackend::vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                                     int64_t pair_begin, int64_t pairs, const float* cache, float* g) {
  ref::vector_gradient(ns, pid, n, fitness, N, pair_begin, pairs, cache, g);
}
void CpuBackend::sum_squares(const float* x, int64_t n, double* out) { out[0] = ref::sum_squares(x, n); }
namespace {
void write_bf16(const float* w, int64_t n, uint16_t* bits) {
  if (bits)
    for (int64_t j = 0; j < n; j++) bits[j] = f32_to_bf16(w[j]);
}
}  // namespace
void CpuBackend::sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* out,
                                uint16_t* w_bf16) {
  out[0] = ref::sgd_update(w, g, n, lr, scale);
  write_bf16(w, n, w_bf16);
}
void CpuBackend::adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1,
                                 double beta2, double eps, double weight_decay, bool adamw, double bc1, double bc2,
                                 double scale, double* out, uint16_t* w_bf16) {
  out[0] = ref::adam_update(w, g, m1, m2, n, lr, beta1, beta2, eps, weight_decay, adamw, bc1, bc2, scale);
  write_bf16(w, n, w_bf16);
}

// ---- registry ------------------------------------------------------------------------------------

namespace {
Registry<BackendFactory>& registry() {
  static Registry<BackendFactory> r = [] {
    Registry<BackendFactory> cpu;
    cpu.add("cpu", [] { return std::unique_ptr<Backend>(new CpuBackend()); });
    return cpu;
  }();
  return r;
}
}  // namespace

void register_backend(const std::string& name, BackendFactory factory) { registry().add(name, std::move(factory)); }
bool backend_available(const std::string& name) { return registry().find(name) != nullptr; }
std::vector<std::string> backend_names() { return registry().names(); }

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (const BackendFactory* f = registry().find(name)) return (*f)();
  std::string known;
  for (const std::string& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError("backend '" + name + "' is not built in (available: " + known + ")");
}

}  // namespace eggroll
