// GPU checks of the device-side random model init and the OpenES materialisation kernel
// (cuda/init.h) against their CPU references, one line per check, "N passed, N failed".
//
//   gpu_init_main   exit 77 ("SKIPPED: no CUDA device") where no GPU is usable or the build has
//                   no CUDA; 1 if any check fails
//
// Checks:
//   init_uniform kernel            fp32 bits identical to ref::init_uniform; bf16 = its RNE rounding
//   BackendModel(cfg, seed, f32)    every parameter identical to Model::random(cfg, seed) (tiny)
//   BackendModel(cfg, seed, bf16)   identical to BackendModel(Model::random(cfg, seed), bf16), the
//                                  uploading constructor, and the same ModelWeights layout (tiny)
//   deterministic in the seed      two 0.1b models with one seed: identical bytes; another seed differs
//   finite, per-parameter scale    every 0.1b parameter finite, mean and standard deviation within
//                                  10% (of the range / of (hi - lo) / sqrt(12)) of the uniform init
//   forward stays finite           greedy decode steps on the random 0.1b (and 7.2b) weights
//   7.2b                           made on the device (timed), sampled elements against the host
//                                  formula, when 24 GiB are free
//   perturb_full                   identical bits, fp32 and bf16, Rademacher and Gaussian (the noise
//                                  is the same bits on host and device: core/philox.h's own
//                                  log/sin/cos); in place = out of place
//   ceilings                       the GEMM and copy measurements return finite positive numbers
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "es/noise.h"
#include "rwkv/model.h"
#include "core/ops/init.h"
#include "rwkv/model_layout.h"

#if EGGROLL_HAVE_CUDA
#include "cuda/cuda_ops.h"
#include "cuda/cuda_backend.h"
#include "rwkv/backend_model.h"
#include "cuda/init.h"
#endif

using namespace eggroll;

namespace {

#if EGGROLL_HAVE_CUDA

int g_passed = 0, g_failed = 0;

void report(bool ok, const std::string& name, const std::string& detail) {
  (ok ? g_passed : g_failed)++;
  std::printf("%s %-56s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);
}

int summary() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : p(static_cast<T*>(cuda::malloc_bytes(std::max<size_t>(count, 1) * sizeof(T)))), n(count) {}
  ~Dev() { cuda::free_bytes(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  std::vector<T> host() const {
    std::vector<T> v(n);
    cuda::copy_to_host(v.data(), p, n * sizeof(T));
    return v;
  }
};

// A device parameter's values as fp32 (bf16 widened), elements [begin, begin + count).
std::vector<float> download(const WeightView& w, size_t begin, size_t count) {
  std::vector<float> out(count);
  if (w.dtype == DType::BF16) {
    std::vector<uint16_t> b(count);
    cuda::copy_to_host(b.data(), static_cast<const uint16_t*>(w.data) + begin, count * 2);
    for (size_t i = 0; i < count; i++) out[i] = bf16_to_f32(b[i]);
  } else {
    cuda::copy_to_host(out.data(), static_cast<const float*>(w.data) + begin, count * 4);
  }
  return out;
}
std::vector<uint8_t> download_bytes(const WeightView& w) {
  const size_t n = size_t(w.rows * w.cols) * (w.dtype == DType::BF16 ? 2 : 4);
  std::vector<uint8_t> out(n);
  cuda::copy_to_host(out.data(), w.data, n);
  return out;
}

void check_init_kernel() {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(4), int64_t(1001), int64_t((1 << 20) + 3)}) {
    const uint64_t base = init_param_base(42, uint64_t(n));
    std::vector<float> want(static_cast<size_t>(n));
    ref::init_uniform(want.data(), n, base, -0.3f, 0.7f);
    Dev<float> d32(static_cast<size_t>(n));
    Dev<uint16_t> d16(static_cast<size_t>(n));
    cuda::init_uniform(d32.p, false, n, base, -0.3f, 0.7f);
    cuda::init_uniform(d16.p, true, n, base, -0.3f, 0.7f);
    const auto got32 = d32.host();
    const auto got16 = d16.host();
    size_t bad32 = 0, bad16 = 0;
    for (size_t j = 0; j < size_t(n); j++) {
      bad32 += std::memcmp(&got32[j], &want[j], 4) != 0;
      bad16 += got16[j] != f32_to_bf16(want[j]);
    }
    report(bad32 == 0 && bad16 == 0, "init_uniform n=" + std::to_string(n) + " (f32, bf16)",
           std::to_string(bad32) + " / " + std::to_string(bad16) + " elements differ");
  }
}

void check_tiny_exact() {
  const ModelConfig cfg = ModelConfig::preset("tiny");
  const uint64_t seed = 9;
  const Model host = Model::random(cfg, seed);
  {
    cuda::CudaBackend be;
    BackendModel dm(be, cfg, seed, DType::F32);
    size_t bad = 0;
    for (size_t pid = 0; pid < host.params.size(); pid++) {
      const auto got = download(dm.weights().params[pid], 0, host.params[pid].numel());
      bad += std::memcmp(got.data(), host.params[pid].data.data(), got.size() * 4) != 0;
    }
    report(bad == 0, "device init f32 == Model::random (tiny)", std::to_string(bad) + " parameters differ");
  }
  cuda::CudaBackend be;
  BackendModel a(be, cfg, seed, DType::BF16), b(be, host, DType::BF16);
  const ModelWeights &wa = a.weights(), &wb = b.weights();
  bool layout = wa.params.size() == wb.params.size() && wa.emb == wb.emb && wa.head == wb.head &&
                wa.ln0_w == wb.ln0_w && wa.ln0_b == wb.ln0_b && wa.lnout_w == wb.lnout_w && wa.lnout_b == wb.lnout_b &&
                wa.layers.size() == wb.layers.size() && a.bytes() == b.bytes();
  for (size_t l = 0; layout && l < wa.layers.size(); l++)
    layout = std::memcmp(&wa.layers[l], &wb.layers[l], sizeof(LayerParams)) == 0;
  size_t bad = 0;
  for (size_t pid = 0; layout && pid < wa.params.size(); pid++) {
    const WeightView &x = wa.params[pid], &y = wb.params[pid];
    layout = x.rows == y.rows && x.cols == y.cols && x.dtype == y.dtype;
    if (layout) bad += download_bytes(x) != download_bytes(y);
  }
  report(layout, "device init bf16: ModelWeights layout of the upload", "");
  report(layout && bad == 0, "device init bf16 == upload of Model::random (tiny)",
         std::to_string(bad) + " parameters differ");
}

// Mean and standard deviation of `v` against the uniform [lo, hi): both within 10%.
bool stats_ok(const std::vector<float>& v, float lo, float hi, std::string& detail) {
  double s = 0, s2 = 0;
  bool finite = true;
  for (float x : v) {
    finite = finite && std::isfinite(x);
    s += x;
  }
  const double mean = s / double(v.size());
  for (float x : v) s2 += (double(x) - mean) * (double(x) - mean);
  const double sd = std::sqrt(s2 / double(v.size()));
  const double want_mean = 0.5 * (double(lo) + double(hi)), want_sd = (double(hi) - double(lo)) / std::sqrt(12.0);
  char buf[160];
  std::snprintf(buf, sizeof buf, "mean %.4g (want %.4g) sd %.4g (want %.4g)", mean, want_mean, sd, want_sd);
  detail = buf;
  return finite && std::fabs(mean - want_mean) <= 0.1 * (double(hi) - double(lo)) &&
         std::fabs(sd - want_sd) <= 0.1 * want_sd;
}

// Greedy decode of `steps` tokens for B members on the device: every logit finite.
bool decode_finite(const BackendModel& dm, int64_t B, int steps) {
  const int V = dm.weights().cfg.vocab;
  cuda::CudaBackend be;
  ModelStep fwd(be, dm.weights(), B);
  BackendState st(be, dm.weights().cfg, int(B));
  Dev<int32_t> tok(static_cast<size_t>(B)), iota(static_cast<size_t>(B));
  Dev<float> logits(size_t(B) * size_t(V));
  std::vector<int32_t> h(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; i++) h[size_t(i)] = int32_t((i * 7919 + 1) % V);
  cuda::copy_to_device(tok.p, h.data(), h.size() * 4);
  for (int64_t i = 0; i < B; i++) h[size_t(i)] = int32_t(i);
  cuda::copy_to_device(iota.p, h.data(), h.size() * 4);
  bool finite = true;
  for (int t = 0; t < steps; t++) {
    fwd.step(tok.p, iota.p, iota.p, B, st.view(), logits.p);
    const auto lg = logits.host();
    for (float x : lg) finite = finite && std::isfinite(x);
    cuda::argmax_rows(logits.p, B, V, tok.p);
  }
  cuda::synchronize();
  return finite;
}

void check_0p1b() {
  const ModelConfig cfg = ModelConfig::preset("0.1b");
  const Model lay = model_layout(cfg);
  cuda::CudaBackend be;
  BackendModel a(be, cfg, 1, DType::BF16), b(be, cfg, 1, DType::BF16), c(be, cfg, 2, DType::BF16);
  size_t differ = 0, same_other = 0;
  for (size_t pid = 0; pid < lay.params.size(); pid++) {
    const auto x = download_bytes(a.weights().params[pid]);
    differ += x != download_bytes(b.weights().params[pid]);
    same_other += x == download_bytes(c.weights().params[pid]);
  }
  report(differ == 0, "device init deterministic in the seed (0.1b bf16)", std::to_string(differ) + " parameters differ");
  report(same_other == 0, "device init: another seed gives other weights (0.1b)",
         std::to_string(same_other) + " parameters equal");
  size_t bad = 0;
  std::string worst;
  for (size_t pid = 0; pid < lay.params.size(); pid++) {
    const Param& p = lay.params[pid];
    float lo, hi;
    init_range(p.name, p.shape, lo, hi);
    std::string d;
    if (!stats_ok(download(a.weights().params[pid], 0, size_t(p.rows * p.cols)), lo, hi, d)) {
      bad++;
      if (worst.empty()) worst = p.name + ": " + d;
    }
  }
  report(bad == 0, "device init: finite, mean and sd within 10% (0.1b)",
         std::to_string(bad) + " parameters off" + (worst.empty() ? "" : " (" + worst + ")"));
  report(decode_finite(a, 8, 4), "greedy decode on device-made 0.1b weights finite", "B 8, 4 steps");
}

void check_7p2b() {
  const size_t need = size_t(24) << 30;
  if (cuda::device_free_memory() < need) {
    std::printf("SKIP %-56s %s\n", "device init 7.2b", "less than 24 GiB free");
    return;
  }
  const ModelConfig cfg = ModelConfig::preset("7.2b");
  const Model lay = model_layout(cfg);
  const double t0 = now_s();
  cuda::CudaBackend be;
  BackendModel dm(be, cfg, 1, DType::BF16);
  const double sec = now_s() - t0;
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2f GB in %.2f s", double(dm.bytes()) / 1e9, sec);
  report(sec < 60, "device init 7.2b bf16 (made in place, timed)", buf);
  size_t bad = 0, off = 0;
  std::string worst;
  for (size_t pid = 0; pid < lay.params.size(); pid++) {
    const Param& p = lay.params[pid];
    const WeightView& w = dm.weights().params[pid];
    const size_t n = size_t(p.rows * p.cols), head = std::min<size_t>(n, 65536), tail = std::min<size_t>(n, 4);
    float lo, hi;
    init_range(p.name, p.shape, lo, hi);
    const uint64_t base = init_param_base(1, pid);
    auto want = [&](size_t j) {
      const float v = init_value(base, j, lo, hi);
      return w.dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v;
    };
    const auto first = download(w, 0, head), last = download(w, n - tail, tail);
    for (size_t j = 0; j < head; j++) bad += first[j] != want(j);
    for (size_t j = 0; j < tail; j++) bad += last[j] != want(n - tail + j);
    std::string d;
    if (head >= 256 && !stats_ok(first, lo, hi, d)) {
      off++;
      if (worst.empty()) worst = p.name + ": " + d;
    }
  }
  report(bad == 0, "device init 7.2b: sampled elements == host formula", std::to_string(bad) + " differ");
  report(off == 0, "device init 7.2b: mean and sd within 10%",
         std::to_string(off) + " parameters off" + (worst.empty() ? "" : " (" + worst + ")"));
  report(decode_finite(dm, 4, 2), "greedy decode on device-made 7.2b weights finite", "B 4, 2 steps");
}

void check_perturb() {
  NoiseConfig nc;
  nc.seed = 77, nc.sigma = 0.02f;
  for (NoiseDist dist : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
    nc.dist = dist;
    const char* dn = dist == NoiseDist::Gaussian ? "gaussian" : "rademacher";
    for (int64_t n : {int64_t(1001), int64_t((1 << 20) + 3)}) {
      const uint32_t member = 5;
      const NoiseKey key = noise_key(nc, 12, 0, member);
      const float c = vector_scale(nc, member);
      std::vector<float> base(static_cast<size_t>(n)), want(static_cast<size_t>(n));
      ref::init_uniform(base.data(), n, 3, -0.5f, 0.5f);
      ref::perturb_full(key, dist, c, base.data(), want.data(), n);
      // fp32, out of place and in place
      Dev<float> db(static_cast<size_t>(n)), dout(static_cast<size_t>(n));
      cuda::copy_to_device(db.p, base.data(), size_t(n) * 4);
      cuda::perturb_full(key, dist, c, db.p, dout.p, false, n);
      cuda::perturb_full(key, dist, c, db.p, db.p, false, n);
      const auto got = dout.host(), inplace = db.host();
      double num = 0, den = 0;
      size_t exact = 0;
      for (size_t j = 0; j < size_t(n); j++) {
        num = std::max(num, std::fabs(double(got[j]) - double(want[j])));
        den = std::max(den, std::fabs(double(want[j]) - double(base[j])));
        exact += got[j] == want[j];
      }
      const double err = den > 0 ? num / den : num;  // relative to the perturbation's size
      const bool same_inplace = std::memcmp(got.data(), inplace.data(), got.size() * 4) == 0;
      char buf[128];
      std::snprintf(buf, sizeof buf, "%zu of %zu identical, err %.3g of |sigma eps|, in place %s", exact, size_t(n),
                    err, same_inplace ? "same" : "DIFFERS");
      const bool ok32 = exact == size_t(n) && same_inplace;
      report(ok32, std::string("perturb_full f32 ") + dn + " n=" + std::to_string(n), buf);
      // bf16
      std::vector<uint16_t> b16(static_cast<size_t>(n)), w16(static_cast<size_t>(n));
      for (size_t j = 0; j < size_t(n); j++) b16[j] = f32_to_bf16(base[j]);
      ref::perturb_full_bf16(key, dist, c, b16.data(), w16.data(), n);
      Dev<uint16_t> d16(static_cast<size_t>(n)), o16(static_cast<size_t>(n));
      cuda::copy_to_device(d16.p, b16.data(), size_t(n) * 2);
      cuda::perturb_full(key, dist, c, d16.p, o16.p, true, n);
      const auto g16 = o16.host();
      size_t diff = 0, far = 0;
      for (size_t j = 0; j < size_t(n); j++) {
        if (g16[j] == w16[j]) continue;
        diff++;
        const float a = bf16_to_f32(g16[j]), b = bf16_to_f32(w16[j]);
        far += std::fabs(a - b) > std::ldexp(std::fabs(b), -7);  // more than one bf16 ulp apart
      }
      const bool ok16 = diff == 0;
      std::snprintf(buf, sizeof buf, "%zu elements differ (%zu by more than one ulp)", diff, far);
      report(ok16, std::string("perturb_full bf16 ") + dn + " n=" + std::to_string(n), buf);
    }
  }
}

void check_ceilings() {
  const double tf = cuda::measure_gemm_bf16_tflops(4096, 5);
  const double gb = cuda::measure_copy_gbps(size_t(256) << 20, 3);
  char buf[96];
  std::snprintf(buf, sizeof buf, "bf16 GEMM 4096^3 %.0f TFLOP/s, copy 256 MiB %.0f GB/s", tf, gb);
  report(std::isfinite(tf) && tf > 0 && std::isfinite(gb) && gb > 0, "ceiling measurements", buf);
}

#endif  // EGGROLL_HAVE_CUDA

}  // namespace

int main() {
#if EGGROLL_HAVE_CUDA
  try {
    if (cuda::device_count() == 0) {
      std::printf("SKIPPED: no CUDA device\n");
      return 77;
    }
    std::printf("device: %s\n", cuda::device_name(0).c_str());
    check_init_kernel();
    check_tiny_exact();
    check_perturb();
    check_0p1b();
    check_ceilings();
    check_7p2b();
    return summary();
  } catch (const std::exception& e) {
    report(false, "exception", e.what());
    summary();
    return 1;
  }
#else
  std::printf("SKIPPED: no CUDA device (built without the CUDA backend)\n");
  return 77;
#endif
}
