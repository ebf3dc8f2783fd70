#pragma once
// A backend with its own memory, like a GPU's, for the tests: host pointers are invalid in it.
// Every op checks that each array it is given lies inside one live allocation of this backend,
// for the extent the op reads or writes (host pointers, stale or too-short buffers would fault or
// corrupt memory on a device), and that upload/download get a host pointer on the host side; then
// it runs the CPU backend's op. A violation throws CheckedBackendError naming the op and the
// pointer. Used by tests/test_population_engine.cpp (the engine's calls) and tests/test_backend_ops.cpp
// (the op table's "checked" column).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>

#include "core/backend.h"
#include "core/cpu_backend.h"
#include "core/dtype.h"

namespace eggroll::test {

struct CheckedBackendError : std::logic_error {
  using std::logic_error::logic_error;
};

class CheckedBackend final : public Backend {
 public:
  const char* name() const override { return "checked"; }
  // Every allocation must be released (a leak on a device); not checked while an exception unwinds.
  ~CheckedBackend() override {
    if (!live_.empty() && std::uncaught_exceptions() == 0) {
      std::fprintf(stderr, "CheckedBackend: %zu allocation(s) never released\n", live_.size());
      std::abort();
    }
  }
  size_t live_allocations() const { return live_.size(); }
  int64_t checks = 0;
  bool owns(const void* p, size_t bytes) const {
    const auto a = reinterpret_cast<uintptr_t>(p);
    auto it = live_.upper_bound(a);
    if (it == live_.begin()) return false;
    --it;
    return a + bytes <= it->first + it->second;
  }

  const void* prepare_weight(const WeightView& w, bool x_times_p) override {
    op_ = "prepare_weight";
    return cpu_.prepare_weight(w, x_times_p);
  }
  // as a GPU backend: the plain bf16 array stays and the update ops rewrite it (the CPU backend
  // instead keeps bf16 matrices only as panels, refreshed from the fp32 masters; the engine tests
  // compare both ways bit for bit)
  bool prepared_replaces_data(const WeightView&) const override { return false; }
  void refresh_prepared(const void* h, const WeightView& w) override {
    op_ = "refresh_prepared";
    cpu_.refresh_prepared(h, w);
  }
  void release_prepared(const void* h) override {
    op_ = "release_prepared";
    cpu_.release_prepared(h);
  }
  size_t bytes_now = 0, bytes_peak = 0;
  void* alloc(size_t bytes) override {
    op_ = "alloc";
    void* p = cpu_.alloc(bytes);
    live_[reinterpret_cast<uintptr_t>(p)] = bytes;
    bytes_now += bytes;
    bytes_peak = std::max(bytes_peak, bytes_now);
    return p;
  }
  void release(void* p) override {
    op_ = "release";
    auto it = live_.find(reinterpret_cast<uintptr_t>(p));
    if (it == live_.end()) fail("release of a pointer that is not a live allocation", p, 0);
    bytes_now -= it->second;
    live_.erase(it);
    cpu_.release(p);
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    op_ = "upload";
    cpu_.upload(dev(dst, bytes), host(src), bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    op_ = "download";
    cpu_.download(host(dst), dev(src, bytes), bytes);
  }
  void zero(void* dst, size_t bytes) override {
    op_ = "zero";
    cpu_.zero(dev(dst, bytes), bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    op_ = "copy";
    cpu_.copy(dev(dst, bytes), dev(src, bytes), bytes);
  }
  void synchronize() override { op_ = "synchronize"; }

  void embed(const WeightView& e, const int32_t* t, int64_t B, float* out) override {
    op_ = "embed";
    cpu_.embed(w(e), f(t, B), B, f(out, B * e.cols));
  }
  void layer_norm(const float* x, VecArg a, VecArg b, float* y, int64_t B, int64_t n, float eps) override {
    op_ = "layer_norm";
    cpu_.layer_norm(f(x, B * n), v(a, B, n), v(b, B, n), f(y, B * n), B, n, eps);
  }
  void time_shift6(const float* xa, float* st, const int32_t* slots, int64_t ss, int64_t lo, const VecArg mu[6],
                   float* out, int64_t B, int64_t C) override {
    op_ = "time_shift6";
    const VecArg m[6] = {v(mu[0], B, C), v(mu[1], B, C), v(mu[2], B, C),
                         v(mu[3], B, C), v(mu[4], B, C), v(mu[5], B, C)};
    cpu_.time_shift6(f(xa, B * C), f(st, 1), f(slots, B), ss, lo, m, f(out, 6 * B * C), B, C);
  }
  void channel_shift(const float* xf, float* st, const int32_t* slots, int64_t ss, int64_t lo, VecArg mu, float* out,
                     int64_t B, int64_t C) override {
    op_ = "channel_shift";
    cpu_.channel_shift(f(xf, B * C), f(st, 1), f(slots, B), ss, lo, v(mu, B, C), f(out, B * C), B, C);
  }
  void linear(const WeightView& W, bool xp, const float* X, float* Y, int64_t B) override {
    op_ = "linear";
    const int64_t in = xp ? W.rows : W.cols, out = xp ? W.cols : W.rows;
    cpu_.linear(w(W), xp, f(X, B * in), f(Y, B * out), B);
  }
  void tanh_(float* x, int64_t n) override {
    op_ = "tanh_";
    cpu_.tanh_(f(x, n), n);
  }
  void sigmoid_(float* x, int64_t n) override {
    op_ = "sigmoid_";
    cpu_.sigmoid_(f(x, n), n);
  }
  void decay(float* x, VecArg w0, int64_t B, int64_t C) override {
    op_ = "decay";
    cpu_.decay(f(x, B * C), v(w0, B, C), B, C);
  }
  void sigmoid_bias(float* a, VecArg a0, int64_t B, int64_t C) override {
    op_ = "sigmoid_bias";
    cpu_.sigmoid_bias(f(a, B * C), v(a0, B, C), B, C);
  }
  void value_residual(float* x, const float* vf, const float* t, VecArg v0, int64_t B, int64_t C) override {
    op_ = "value_residual";
    cpu_.value_residual(f(x, B * C), f(vf, B * C), f(t, B * C), v(v0, B, C), B, C);
  }
  void kk_prepare(float* k, const float* a, VecArg kk_, VecArg ka, float* kk, int64_t B, int64_t H) override {
    op_ = "kk_prepare";
    const int64_t n = B * H * 64;
    cpu_.kk_prepare(f(k, n), f(a, n), v(kk_, B, H * 64), v(ka, B, H * 64), f(kk, n), B, H);
  }
  void wkv7(float* st, const int32_t* slots, int64_t ss, int64_t lo, const float* r, const float* d, const float* k,
            const float* x, const float* kk, const float* a, float* y, int64_t B, int64_t H) override {
    op_ = "wkv7";
    const int64_t n = B * H * 64;
    cpu_.wkv7(f(st, 1), f(slots, B), ss, lo, f(r, n), f(d, n), f(k, n), f(x, n), f(kk, n), f(a, n), f(y, n), B, H);
  }
  void group_norm_bonus_gate(float* y, const float* r, const float* k, const float* x, const float* g, VecArg rk,
                             VecArg lw, VecArg lb, int64_t B, int64_t H, float eps) override {
    op_ = "group_norm_bonus_gate";
    const int64_t n = B * H * 64;
    cpu_.group_norm_bonus_gate(f(y, n), f(r, n), f(k, n), f(x, n), f(g, n), v(rk, B, H * 64), v(lw, B, H * 64),
                               v(lb, B, H * 64), B, H, eps);
  }
  void add(float* x, const float* t, int64_t n) override {
    op_ = "add";
    cpu_.add(f(x, n), f(t, n), n);
  }
  void relu_sq(float* x, int64_t n) override {
    op_ = "relu_sq";
    cpu_.relu_sq(f(x, n), n);
  }
  void gather_rows(const float* src, const int32_t* rows, int64_t n, int64_t C, float* dst) override {
    op_ = "gather_rows";
    cpu_.gather_rows(f(src, 1), f(rows, n), n, C, f(dst, n * C));
  }
  void gather_i32(const int32_t* src, const int32_t* idx, int64_t n, int32_t* dst) override {
    op_ = "gather_i32";
    cpu_.gather_i32(f(src, 1), f(idx, n), n, f(dst, n));
  }
  void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool xp, const float* X, float* Y,
                   const int32_t* mem, int64_t B, const float* cache) override {
    op_ = "lowrank_add";
    const int64_t in = xp ? m : n, out = xp ? n : m;
    cpu_.lowrank_add(ns, pid, m, n, xp, f(X, B * in), f(Y, B * out), f(mem, B), B, opt(cache));
  }
  void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* t, float* X,
                             const int32_t* mem, int64_t B, const float* cache) override {
    op_ = "embedding_lowrank_add";
    cpu_.embedding_lowrank_add(ns, pid, m, n, f(t, B), f(X, B * n), f(mem, B), B, opt(cache));
  }
  void vector_noise(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* mem, int64_t B,
                    const float* cache, float* out) override {
    op_ = "vector_noise";
    cpu_.vector_noise(ns, pid, f(base, n), n, f(mem, B), B, opt(cache), f(out, B * n));
  }
  void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) override {
    op_ = "fill_noise_cache";
    cpu_.fill_noise_cache(ns, pid, len, pairs, f(out, len * pairs));
  }
  void init_uniform(void* out, DType dt, int64_t n, uint64_t base, float lo, float hi) override {
    op_ = "init_uniform";
    cpu_.init_uniform(dev(out, size_t(n) * dtype_size(dt)), dt, n, base, lo, hi);
  }
  void perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const void* base, void* out, DType dt,
                    int64_t n) override {
    op_ = "perturb_full";
    const size_t bytes = size_t(n) * dtype_size(dt);
    cpu_.perturb_full(key, dist, scale, dev(base, bytes), dev(out, bytes), dt, n);
  }
  void sample(const float* lg, int64_t rows, int64_t V, const SamplingParams& p, const uint64_t* seeds,
              const uint64_t* ctr, int32_t* out) override {
    op_ = "sample";
    const bool draws = p.temperature > 0.f;
    cpu_.sample(f(lg, rows * V), rows, V, p, draws ? f(seeds, rows) : seeds, draws ? f(ctr, rows) : ctr, f(out, rows));
  }
  void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fit, int64_t N, int64_t p0,
                      int64_t np, const float* cache, float* A, float* Bm) override {
    op_ = "update_factors";
    const int64_t K = np * ns.rank;
    cpu_.update_factors(ns, pid, m, n, f(fit, N), N, p0, np, opt(cache), f(A, m * K), f(Bm, n * K));
  }
  void update_gemm(const float* A, const float* Bm, float* G, int64_t m, int64_t n, int64_t K) override {
    op_ = "update_gemm";
    cpu_.update_gemm(f(A, m * K), f(Bm, n * K), f(G, m * n), m, n, K);
  }
  void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fit, int64_t N, int64_t p0,
                       int64_t np, const float* cache, float* g) override {
    op_ = "vector_gradient";
    cpu_.vector_gradient(ns, pid, n, f(fit, N), N, p0, np, opt(cache), f(g, n));
  }
  int64_t reduce_doubles() const override {
    op_ = "reduce_doubles";
    return 3;
  }  // result + scratch, as a device reduction has
  void sum_squares(const float* x, int64_t n, double* out) override {
    op_ = "sum_squares";
    cpu_.sum_squares(f(x, n), n, f(out, 3));
  }
  void sgd_update(float* x, const float* g, int64_t n, double lr, double sc, double* out, uint16_t* b16) override {
    op_ = "sgd_update";
    cpu_.sgd_update(f(x, n), f(g, n), n, lr, sc, f(out, 3), b16 ? f(b16, n) : nullptr);
  }
  void adam_update(float* x, const float* g, float* m1, float* m2, int64_t n, double lr, double b1, double b2,
                   double eps, double wd, bool adamw, double bc1, double bc2, double sc, double* out,
                   uint16_t* b16) override {
    op_ = "adam_update";
    cpu_.adam_update(f(x, n), f(g, n), f(m1, n), f(m2, n), n, lr, b1, b2, eps, wd, adamw, bc1, bc2, sc, f(out, 3),
                     b16 ? f(b16, n) : nullptr);
  }

 private:
  // p must lie in one live allocation with `bytes` bytes from p on
  const void* dev(const void* p, size_t bytes) {
    checks++;
    const auto a = reinterpret_cast<uintptr_t>(p);
    auto it = live_.upper_bound(a);
    if (it == live_.begin() || a + bytes > std::prev(it)->first + std::prev(it)->second)
      fail("outside this backend's allocations", p, bytes);
    return p;
  }
  void* dev(void* p, size_t bytes) { return const_cast<void*>(dev(static_cast<const void*>(p), bytes)); }
  template <class T>
  T* f(T* p, int64_t n) {  // n elements of T
    return static_cast<T*>(const_cast<void*>(dev(static_cast<const void*>(p), size_t(n) * sizeof(T))));
  }
  const float* opt(const float* cache) { return cache ? f(cache, 1) : nullptr; }
  VecArg v(VecArg a, int64_t B, int64_t n) { return {f(a.p, a.stride ? a.stride * (B - 1) + n : n), a.stride}; }
  const WeightView& w(const WeightView& W) {
    dev(W.data, size_t(W.rows * W.cols) * (W.dtype == DType::BF16 ? 2 : 4));
    return W;
  }
  template <class T>
  T* host(T* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    auto it = live_.upper_bound(a);
    const bool inside = it != live_.begin() && a < std::prev(it)->first + std::prev(it)->second;
    if (inside) fail("host pointer lies in this backend's memory", p, 0);
    return p;
  }
  [[noreturn]] void fail(const char* what, const void* p, size_t bytes) const {
    char buf[160];
    std::snprintf(buf, sizeof buf, " %p (%zu bytes): ", p, bytes);
    throw CheckedBackendError(std::string("CheckedBackend::") + op_ + ": pointer" + buf + what);
  }
  CpuBackend cpu_;
  mutable const char* op_ = "?";
  std::map<uintptr_t, size_t> live_;
};

}  // namespace eggroll::test
