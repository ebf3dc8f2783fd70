// GPU op tests (ggml test-backend-ops style): every CUDA op of cuda/cuda_ops.h on random inputs
// against its CPU reference (es/ops_ref.h, rwkv/forward.h, core/ops/sample.h, es/fitness.h,
// es/eggroll.h), then the whole device step (cuda/device_forward.h) against the CPU forward and
// the float64 fixture logits, then whole ES steps (es/ops_engine.h: perturbed rollouts, update,
// optimizer) on the CUDA backend against the CPU backend. One line per check, then "N passed,
// N failed".
//
//   gpu_ops_main             GPU checks; exit 77 ("SKIPPED: no CUDA device") where no GPU is
//                            usable or the build has no CUDA; 1 if any check fails
//   gpu_ops_main --cpu-only  CPU checks of the op-level step as the GPU checks drive it (ModelStep
//                            on the CPU backend, unpacked weights, a hand-built perturbation)
//                            against Forward (packed panels, EggrollPerturbation) and the
//                            fixtures; these run everywhere
//
// Tolerances. Error = max |gpu - ref| / max |ref| over the output ("normalised"):
//   fp32 ops                  <= 1e-5 (different summation orders and FMA contraction: a few ulp
//                             of the largest partial sums)
//   bf16-weight products      <= 1e-5 against a reference that rounds the activations to bf16
//                             exactly as the device does: bf16 x bf16 products are exact in fp32,
//                             so only the fp32 accumulation order differs, as for fp32
//   Philox raw words, bf16 conversion, gathers, token shifts' state, argmax, sampled ids,
//   rank shaping: identical
//   Gaussian noise            <= 1e-5: the raw words are identical, logf/sinf/cosf differ in ulps
//   optimizer |dW|^2          <= 1e-5 relative: FMA contraction may move a weight by one ulp
//   whole step (fp32)         <= 1e-4 against the CPU step (errors of ~100 ops per layer compound),
//                             and the fixture logits within 1e-3 of float64 (the CPU forward's test)
//   whole step (bf16 weights) <= 5e-3 against the CPU step with the same bf16 weights: both round
//                             activations to bf16 before each product, and fp32 values that differ
//                             in the last bits can round to neighbouring bf16 values (2^-8 apart)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/philox.h"
#include "es/eggroll.h"
#include "es/fitness.h"
#include "es/noise.h"
#include "es/ops_engine.h"
#include "core/ops/ops.h"
#include "rwkv/step.h"
#include "rwkv/forward.h"
#include "rwkv/decoder.h"
#include "rwkv/model.h"
#include "core/ops/sample.h"

#ifndef EGGROLL_SOURCE_DIR
#define EGGROLL_SOURCE_DIR "."
#endif
#include "fixtures.h"

#if EGGROLL_HAVE_CUDA
#include "cuda/cuda_ops.h"
#include "cuda/cuda_backend.h"
#include "rwkv/backend_model.h"
#endif

using namespace eggroll;

namespace {

int g_passed = 0, g_failed = 0;

// A fixture file: $EGGROLL_FIXTURES (a copy of shared/fixtures, e.g. on the GPU machine, where
// the checkout lives elsewhere) or ../shared/fixtures beside the source tree.
std::string fx(const std::string& rel) {
  if (const char* d = std::getenv("EGGROLL_FIXTURES"); d && *d) return std::string(d) + "/" + rel;
  return test::fixture(rel);
}

void report(bool ok, const std::string& name, const std::string& detail) {
  (ok ? g_passed : g_failed)++;
  std::printf("%s %-56s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);
}

// max |a - b| / max |b| (NaN anywhere -> inf)
double norm_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (std::isnan(d)) return INFINITY;
    num = std::max(num, d);
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}
[[maybe_unused]] double norm_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  return norm_err(a.data(), b.data(), a.size());
}
double max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return a.size() == b.size() ? m : INFINITY;
}

void check_err(const std::string& name, double err, double tol) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "err %.3g (tol %.1g)", err, tol);
  report(err <= tol, name, buf);
}

template <class T>
bool same(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

std::mt19937_64 g_rng(12345);
[[maybe_unused]] std::vector<float> rnd(size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
[[maybe_unused]] std::vector<int32_t> rnd_int(size_t n, int32_t lo, int32_t hi) {
  std::uniform_int_distribution<int32_t> d(lo, hi);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
[[maybe_unused]] std::vector<int32_t> permutation(int32_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; i++) p[size_t(i)] = i;
  std::shuffle(p.begin(), p.end(), g_rng);
  return p;
}

// ---- CPU: the op-level step against the monolithic forward -----------------------------------------

// Runs `tokens[t][i]` for T steps through Forward and ModelStep (CPU backend) and compares logits.
struct StepCase {
  std::vector<std::vector<int32_t>> tokens;  // [T][B]
  std::vector<std::vector<int>> slots;       // [T][B]
  std::vector<int> members;                  // [B] (empty: = slots)
  std::vector<uint8_t> need;                 // [B] (empty: all)
};

// Forward::step logits for every step, concatenated.
std::vector<float> forward_logits(const Model& m, const StepCase& c, int nslots, const StepPerturbation* pert) {
  Forward fwd(m);
  BatchState st(m.cfg, nslots);
  std::vector<float> all;
  for (size_t t = 0; t < c.tokens.size(); t++) {
    const size_t B = c.tokens[t].size();
    size_t rows = c.need.empty() ? B : size_t(std::count(c.need.begin(), c.need.end(), 1));
    std::vector<float> lg(rows * size_t(m.cfg.vocab));
    fwd.step(c.tokens[t], c.slots[t], st, lg.data(), c.need, pert, c.members);
    all.insert(all.end(), lg.begin(), lg.end());
  }
  return all;
}

// The same through ModelStep on `be` with weights `w` (pointers in be's memory).
std::vector<float> opstep_logits(Backend& be, const ModelWeights& w, const StepCase& c, int nslots,
                                 const StepPerturbation* pert, BatchState* final_state = nullptr) {
  const ModelConfig& cfg = w.cfg;
  const int64_t B = int64_t(c.tokens[0].size());
  ModelStep op(be, w, B);
  BatchState host(cfg, nslots);
  auto dev = [&](size_t bytes) { return be.alloc(bytes ? bytes : 4); };
  float* att = static_cast<float*>(dev(host.att_x.size() * 4));
  float* wkv = static_cast<float*>(dev(host.wkv.size() * 4));
  float* ffn = static_cast<float*>(dev(host.ffn_x.size() * 4));
  be.zero(att, host.att_x.size() * 4), be.zero(wkv, host.wkv.size() * 4), be.zero(ffn, host.ffn_x.size() * 4);
  int32_t* io = static_cast<int32_t*>(dev(size_t(4 * B) * 4));
  float* lg = static_cast<float*>(dev(size_t(B) * size_t(cfg.vocab) * 4));
  std::vector<int32_t> rows;
  for (int64_t i = 0; i < B; i++)
    if (c.need.empty() || c.need[size_t(i)]) rows.push_back(int32_t(i));
  std::vector<float> all;
  for (size_t t = 0; t < c.tokens.size(); t++) {
    std::vector<int32_t> sl(c.slots[t].begin(), c.slots[t].end());
    std::vector<int32_t> mem = c.members.empty() ? sl : std::vector<int32_t>(c.members.begin(), c.members.end());
    be.upload(io, c.tokens[t].data(), size_t(B) * 4);
    be.upload(io + B, sl.data(), size_t(B) * 4);
    be.upload(io + 2 * B, mem.data(), size_t(B) * 4);
    be.upload(io + 3 * B, rows.data(), rows.size() * 4);
    op.step(io, io + B, io + 2 * B, B, StateView{att, wkv, ffn}, lg, c.need.empty() ? nullptr : io + 3 * B,
            int64_t(rows.size()), pert);
    std::vector<float> h(rows.size() * size_t(cfg.vocab));
    be.download(h.data(), lg, h.size() * 4);
    all.insert(all.end(), h.begin(), h.end());
  }
  if (final_state) {
    *final_state = host;
    be.download(final_state->att_x.data(), att, host.att_x.size() * 4);
    be.download(final_state->wkv.data(), wkv, host.wkv.size() * 4);
    be.download(final_state->ffn_x.data(), ffn, host.ffn_x.size() * 4);
  }
  for (void* p : {static_cast<void*>(att), static_cast<void*>(wkv), static_cast<void*>(ffn), static_cast<void*>(io),
                  static_cast<void*>(lg)})
    be.release(p);
  return all;
}

StepCase sequence_case(const std::vector<int32_t>& toks) {
  StepCase c;
  for (int32_t t : toks) {
    c.tokens.push_back({t});
    c.slots.push_back({0});
  }
  return c;
}

StepCase batch_case(int B, int T, int V, bool subset) {
  StepCase c;
  for (int t = 0; t < T; t++) {
    std::vector<int32_t> toks;
    std::vector<int> slots;
    for (int r = 0; r < B; r++) {
      const int i = (r * 5 + t) % B;  // a permutation of the slots (B not a multiple of 5)
      slots.push_back(i);
      toks.push_back(int32_t((i * 131 + t * 17 + 3) % V));
    }
    c.tokens.push_back(toks);
    c.slots.push_back(slots);
  }
  if (subset)
    for (int r = 0; r < B; r++) c.need.push_back(uint8_t(r % 3 != 1));
  return c;
}

// Host-side StepPerturbation equal to EggrollPerturbation(m, sel, nc, cache) at step `epoch`;
// the cache (when keep) in `storage`.
StepPerturbation host_perturbation(const Model& m, const ParamSelection& sel, const NoiseConfig& nc, uint64_t epoch,
                                   int directions, bool keep, std::vector<std::vector<float>>& storage) {
  StepPerturbation p;
  p.noise.seed = nc.seed;
  p.noise.epoch_bucket = epoch_bucket(epoch, nc.noise_reuse);
  p.noise.rank = nc.rank;
  p.noise.dist = nc.dist;
  p.noise.sigma = nc.sigma;
  p.lowrank = sel.lowrank;
  p.full = sel.full;
  if (keep) {
    const int64_t pairs = (directions + 1) / 2;
    storage.assign(m.params.size(), {});
    p.cache.assign(m.params.size(), nullptr);
    for (int pid : sel.ids()) {
      const Param& q = m.params[size_t(pid)];
      const int64_t len = sel.lowrank[size_t(pid)] ? (q.rows + q.cols) * nc.rank : int64_t(q.numel());
      storage[size_t(pid)].resize(size_t(pairs * len));
      ref::fill_noise_cache(p.noise, uint32_t(pid), len, pairs, storage[size_t(pid)].data());
      p.cache[size_t(pid)] = storage[size_t(pid)].data();
    }
  }
  return p;
}

Model tiny_model(uint64_t seed) {
  ModelConfig c = ModelConfig::preset("tiny", 97);
  c.n_layer = 2;
  return Model::random(c, seed);
}

// One of ../shared/fixtures/rwkv7: the model, its token sequence as a step case, and the
// float64 reference logits of that sequence.
struct Fixture {
  Model m;
  StepCase c;
  std::vector<float> ref64;
};
Fixture load_fixture(const std::string& name) {
  const auto meta = test::read_json(fx("rwkv7/" + name + ".json"));
  return {Model::load(fx("rwkv7/" + name + ".pth")), sequence_case(meta["tokens"].get<std::vector<int32_t>>()),
          test::read_f32(fx("rwkv7/" + meta["logits_file"].get<std::string>()))};
}

void cpu_checks() {
  CpuBackend cpu;
  // 1. fixtures, one token at a time
  for (const auto& name : test::rwkv_fixtures()) {
    const auto [m, c, ref] = load_fixture(name);
    const auto want = forward_logits(m, c, 1, nullptr);
    const auto got = opstep_logits(cpu, host_step_weights(m), c, 1, nullptr);
    check_err("cpu opstep == forward: " + name, max_abs(got, want), 1e-6);
    check_err("cpu opstep vs float64 fixture: " + name, max_abs(got, ref), 1e-3);
  }
  // 2. batches: permuted slots, a subset of rows with logits
  {
    const Model m = Model::load(fx("rwkv7/rand-l3-d256-v1024.pth"));
    for (bool subset : {false, true}) {
      const auto c = batch_case(7, 4, m.cfg.vocab, subset);
      BatchState s;
      const auto want = forward_logits(m, c, 7, nullptr);
      const auto got = opstep_logits(cpu, host_step_weights(m), c, 7, nullptr, &s);
      check_err(std::string("cpu opstep == forward: batch 7") + (subset ? ", logit subset" : ""), max_abs(got, want),
                1e-6);
    }
  }
  // 3. EGGROLL perturbation: every parameter, vectors too, keep and regenerate
  {
    const Model m = tiny_model(3);
    for (bool freeze : {true, false})
      for (bool keep : {true, false}) {
        auto sel = select_params(m, {"*"}, {}, freeze);
        NoiseConfig nc;
        nc.seed = 11, nc.rank = 2, nc.sigma = 0.05f;
        const int G = 6;
        EggrollPerturbation ep(m, sel, nc, keep ? NoiseCache::Keep : NoiseCache::Regenerate);
        ep.begin_step(5, G);
        std::vector<std::vector<float>> storage;
        const StepPerturbation sp = host_perturbation(m, sel, nc, 5, G, keep, storage);
        auto c = batch_case(G, 3, m.cfg.vocab, false);
        c.members = {3, 0, 5, 1, 4, 2};
        const auto want = forward_logits(m, c, G, &ep.step());
        const auto got = opstep_logits(cpu, host_step_weights(m), c, G, &sp);
        check_err(std::string("cpu opstep == forward: perturbed") + (freeze ? "" : " +vectors") +
                      (keep ? ", cached" : ", regenerated"),
                  max_abs(got, want), 1e-6);
      }
  }
}

#if EGGROLL_HAVE_CUDA

// ---- GPU helpers ---------------------------------------------------------------------------------------

template <class T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  Dev() = default;
  explicit Dev(size_t count) : n(count) { p = static_cast<T*>(cuda::malloc_bytes(std::max<size_t>(n, 1) * sizeof(T))); }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) { up(h); }
  ~Dev() { cuda::free_bytes(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  void up(const std::vector<T>& h) { cuda::copy_to_device(p, h.data(), h.size() * sizeof(T)); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    cuda::synchronize();
    cuda::copy_to_host(h.data(), p, n * sizeof(T));
    return h;
  }
};

void gpu_philox() {
  // the Random123 / cuRAND known answers (tests/test_philox.cpp), then random counters and keys
  std::vector<uint32_t> ctr = {0, 0, 0, 0, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
                               0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  std::vector<uint32_t> key = {0, 0, 0xffffffffu, 0xffffffffu, 0xa4093822u, 0x299f31d0u};
  const std::vector<uint32_t> known = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u, 0x408f276du, 0x41c83b0eu,
                                       0xa20bc7c6u, 0x6d5451fdu, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
  std::uniform_int_distribution<uint32_t> u32;
  const size_t n = 4099;
  while (key.size() < 2 * n) key.push_back(u32(g_rng));
  while (ctr.size() < 4 * n) ctr.push_back(u32(g_rng));
  Dev<uint32_t> dc(ctr), dk(key), dout(4 * n);
  cuda::philox_blocks(dc.p, dk.p, int64_t(n), dout.p);
  const auto got = dout.get();
  std::vector<uint32_t> want(4 * n);
  ref::philox_blocks(ctr.data(), key.data(), int64_t(n), want.data());
  report(std::equal(known.begin(), known.end(), got.begin()), "philox known answers on device", "3 blocks");
  report(same(got, want), "philox raw words device == host", std::to_string(n) + " blocks, bit-identical");

  for (NoiseDist dist : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
    NoiseKey k;
    k.seed = 0x1234567890abcdefull, k.param_id = 17, k.epoch_bucket = 3, k.pair = 9;
    const uint64_t start = 5;
    const int64_t count = 10001;
    Dev<float> d(static_cast<size_t>(count));
    cuda::fill_noise(k, dist, start, count, d.p);
    std::vector<float> want2(static_cast<size_t>(count));
    fill_noise(k, dist, start, size_t(count), want2.data());
    const auto got2 = d.get();
    if (dist == NoiseDist::Rademacher) report(same(got2, want2), "fill_noise rademacher", "bit-identical");
    else check_err("fill_noise gaussian (unaligned start)", norm_err(got2, want2), 1e-5);
  }
}

void gpu_model_ops() {
  const int64_t B = 13, H = 4, C = H * 64, V = 300, L = 3, S = 17;  // S state slots
  // embed
  {
    const auto emb = rnd(size_t(V * C));
    std::vector<uint16_t> emb16(emb.size());
    for (size_t j = 0; j < emb.size(); j++) emb16[j] = f32_to_bf16(emb[j]);
    const auto tok = rnd_int(size_t(B), 0, int32_t(V - 1));
    Dev<float> de(emb), out(static_cast<size_t>(B * C));
    Dev<uint16_t> de16(emb16);
    Dev<int32_t> dt(tok);
    std::vector<float> want(static_cast<size_t>(B * C));
    cuda::embed_rows(de.p, false, dt.p, B, C, out.p);
    ref::embed_rows(emb.data(), nullptr, tok.data(), B, C, want.data());
    report(same(out.get(), want), "embed_rows f32", "identical");
    cuda::embed_rows(de16.p, true, dt.p, B, C, out.p);
    ref::embed_rows(nullptr, emb16.data(), tok.data(), B, C, want.data());
    report(same(out.get(), want), "embed_rows bf16", "identical");
  }
  // layer norm, shared and per-row vectors
  for (bool per_row : {false, true}) {
    const int64_t n = 1000;
    const auto x = rnd(size_t(B * n), -3, 5), w = rnd(size_t(per_row ? B * n : n)), b = rnd(size_t(per_row ? B * n : n));
    Dev<float> dx(x), dw(w), db(b), dy(static_cast<size_t>(B * n));
    const int64_t s = per_row ? n : 0;
    cuda::layer_norm_rows(dx.p, dw.p, s, db.p, s, dy.p, B, n, 1e-5f);
    std::vector<float> want(static_cast<size_t>(B * n));
    ref::layer_norm_rows(x.data(), w.data(), s, b.data(), s, want.data(), B, n, 1e-5f);
    check_err(std::string("layer_norm_rows") + (per_row ? " per-row w/b" : ""), norm_err(dy.get(), want), 1e-5);
  }
  // token shifts (state rows of permuted slots in layer 1)
  {
    const auto xa = rnd(size_t(B * C));
    auto state = rnd(size_t(S * L * C));
    std::vector<std::vector<float>> mus;
    cuda::Mix6 mix{};
    const float* mp[6];
    int64_t ms[6];
    std::vector<std::unique_ptr<Dev<float>>> dmu;
    for (int q = 0; q < 6; q++) {
      const bool per_row = q % 2 == 1;
      mus.push_back(rnd(size_t(per_row ? B * C : C), 0, 1));
      dmu.push_back(std::make_unique<Dev<float>>(mus.back()));
      mix.p[q] = dmu.back()->p, mix.stride[q] = per_row ? C : 0;
      mp[q] = mus.back().data(), ms[q] = per_row ? C : 0;
    }
    auto slots = permutation(int32_t(S));
    slots.resize(size_t(B));
    Dev<float> dx(xa), dstate(state), dout(static_cast<size_t>(6 * B * C));
    Dev<int32_t> ds(slots);
    cuda::time_shift6(dx.p, dstate.p, ds.p, L * C, C, mix, dout.p, B, C);
    std::vector<float> want(static_cast<size_t>(6 * B * C));
    auto st2 = state;
    ref::time_shift6(xa.data(), st2.data(), slots.data(), L * C, C, mp, ms, want.data(), B, C);
    check_err("time_shift6 (6 mixes)", norm_err(dout.get(), want), 1e-6);
    report(same(dstate.get(), st2), "time_shift6 state update", "identical");
    Dev<float> dstate2(state), dout2(static_cast<size_t>(B * C));
    cuda::channel_shift(dx.p, dstate2.p, ds.p, L * C, 2 * C, dmu[1]->p, C, dout2.p, B, C);
    std::vector<float> want2(static_cast<size_t>(B * C));
    auto st3 = state;
    ref::channel_shift(xa.data(), st3.data(), slots.data(), L * C, 2 * C, mus[1].data(), C, want2.data(), B, C);
    check_err("channel_shift", norm_err(dout2.get(), want2), 1e-6);
    report(same(dstate2.get(), st3), "channel_shift state update", "identical");
  }
  // elementwise
  {
    const int64_t n = B * C;
    const auto x = rnd(size_t(n), -6, 6);
    Dev<float> d(x);
    auto w = x;
    cuda::tanh_inplace(d.p, n);
    ref::tanh_inplace(w.data(), n);
    check_err("tanh_inplace", norm_err(d.get(), w), 1e-5);
    d.up(x), w = x;
    cuda::sigmoid_inplace(d.p, n);
    ref::sigmoid_inplace(w.data(), n);
    check_err("sigmoid_inplace", norm_err(d.get(), w), 1e-5);
    d.up(x), w = x;
    cuda::relu_sq_inplace(d.p, n);
    ref::relu_sq_inplace(w.data(), n);
    check_err("relu_sq_inplace", norm_err(d.get(), w), 1e-6);
    const auto w0 = rnd(size_t(C), -3, 1), t = rnd(size_t(n)), vf = rnd(size_t(n));
    Dev<float> dw0(w0), dt(t), dvf(vf);
    d.up(x), w = x;
    cuda::decay_rows(d.p, dw0.p, 0, B, C);
    ref::decay_rows(w.data(), w0.data(), 0, B, C);
    check_err("decay_rows", norm_err(d.get(), w), 1e-5);
    d.up(x), w = x;
    cuda::sigmoid_bias_rows(d.p, dw0.p, 0, B, C);
    ref::sigmoid_bias_rows(w.data(), w0.data(), 0, B, C);
    check_err("sigmoid_bias_rows", norm_err(d.get(), w), 1e-5);
    d.up(x), w = x;
    cuda::value_residual_rows(d.p, dvf.p, dt.p, dw0.p, 0, B, C);
    ref::value_residual_rows(w.data(), vf.data(), t.data(), w0.data(), 0, B, C);
    check_err("value_residual_rows", norm_err(d.get(), w), 1e-5);
    d.up(x), w = x;
    cuda::add_inplace(d.p, dt.p, n);
    ref::add_inplace(w.data(), t.data(), n);
    report(same(d.get(), w), "add_inplace", "identical");
    std::vector<uint16_t> bits(static_cast<size_t>(n));
    Dev<uint16_t> db(static_cast<size_t>(n));
    cuda::f32_to_bf16(dt.p, db.p, n);
    for (int64_t j = 0; j < n; j++) bits[size_t(j)] = f32_to_bf16(t[size_t(j)]);
    report(same(db.get(), bits), "f32_to_bf16 (round to nearest even)", "identical");
    cuda::bf16_to_f32(db.p, d.p, n);
    for (int64_t j = 0; j < n; j++) w[size_t(j)] = bf16_to_f32(bits[size_t(j)]);
    report(same(d.get(), w), "bf16_to_f32", "identical");
    const auto rows = rnd_int(7, 0, int32_t(B - 1));
    Dev<int32_t> dr(rows);
    Dev<float> dg(static_cast<size_t>(7 * C));
    cuda::gather_rows(dt.p, dr.p, 7, C, dg.p);
    std::vector<float> want(static_cast<size_t>(7 * C));
    ref::gather_rows(t.data(), rows.data(), 7, C, want.data());
    report(same(dg.get(), want), "gather_rows", "identical");
    const auto src = rnd_int(size_t(B), -50, 50);
    Dev<int32_t> dsrc(src), dgi(7);
    cuda::gather_i32(dsrc.p, dr.p, 7, dgi.p);
    std::vector<int32_t> wi(7);
    ref::gather_i32(src.data(), rows.data(), 7, wi.data());
    report(same(dgi.get(), wi), "gather_i32", "identical");
  }
  // heads: kk, wkv (3 tokens into the same states), group norm + bonus + gate
  {
    const int64_t n = B * C;
    auto k = rnd(size_t(n)), a = rnd(size_t(n), 0, 1), kk_k = rnd(size_t(C), 0.5, 1.5), k_a = rnd(size_t(n), 0, 1);
    Dev<float> dk(k), da(a), dkkk(kk_k), dka(k_a), dkk(static_cast<size_t>(n));
    cuda::kk_prepare(dk.p, da.p, dkkk.p, 0, dka.p, C, dkk.p, B, H);
    std::vector<float> kk(static_cast<size_t>(n));
    ref::kk_prepare(k.data(), a.data(), kk_k.data(), 0, k_a.data(), C, kk.data(), B, H);
    check_err("kk_prepare (kk)", norm_err(dkk.get(), kk), 1e-5);
    check_err("kk_prepare (k adjusted)", norm_err(dk.get(), k), 1e-5);

    auto state = rnd(size_t(S * L * H * 4096), -0.5, 0.5);
    auto slots = permutation(int32_t(S));
    slots.resize(size_t(B));
    Dev<float> dstate(state), dy(static_cast<size_t>(n));
    Dev<int32_t> ds(slots);
    double worst_y = 0;
    for (int t = 0; t < 3; t++) {
      const auto r = rnd(size_t(n)), dec = rnd(size_t(n), 0.545f, 1.f), v = rnd(size_t(n));
      Dev<float> dr(r), ddec(dec), dv(v);
      dk.up(k), dkk.up(kk), da.up(a);
      cuda::wkv7_rows(dstate.p, ds.p, L * H * 4096, H * 4096, dr.p, ddec.p, dk.p, dv.p, dkk.p, da.p, dy.p, B, H);
      std::vector<float> y(static_cast<size_t>(n));
      ref::wkv7_rows(state.data(), slots.data(), L * H * 4096, H * 4096, r.data(), dec.data(), k.data(), v.data(),
                     kk.data(), a.data(), y.data(), B, H);
      worst_y = std::max(worst_y, norm_err(dy.get(), y));
    }
    check_err("wkv7_rows: y over 3 tokens", worst_y, 1e-5);
    check_err("wkv7_rows: state after 3 tokens", norm_err(dstate.get(), state), 1e-5);

    const auto y = rnd(size_t(n), -2, 2), r = rnd(size_t(n)), v = rnd(size_t(n)), g = rnd(size_t(n));
    const auto rk = rnd(size_t(C)), lw = rnd(size_t(n)), lb = rnd(size_t(C));
    Dev<float> dy2(y), dr(r), dv(v), dg(g), drk(rk), dlw(lw), dlb(lb);
    cuda::group_norm_bonus_gate(dy2.p, dr.p, dk.p, dv.p, dg.p, drk.p, 0, dlw.p, C, dlb.p, 0, B, H, 64e-5f);
    auto want = y;
    ref::group_norm_bonus_gate(want.data(), r.data(), k.data(), v.data(), g.data(), rk.data(), 0, lw.data(), C,
                               lb.data(), 0, B, H, 64e-5f);
    check_err("group_norm_bonus_gate", norm_err(dy2.get(), want), 1e-5);
  }
}

void gpu_gemm() {
  cuda::Blas blas;
  struct Shape {
    int64_t B, in, out;
    bool xp;
  };
  for (Shape s : {Shape{37, 256, 320, false}, Shape{37, 256, 64, true}, Shape{5, 1024, 4096, false},
                  Shape{64, 96, 2048, true}}) {
    const auto W = rnd(size_t(s.in * s.out)), X = rnd(size_t(s.B * s.in));
    std::vector<uint16_t> W16(W.size());
    for (size_t j = 0; j < W.size(); j++) W16[j] = f32_to_bf16(W[j]);
    Dev<float> dW(W), dX(X), dY(static_cast<size_t>(s.B * s.out));
    Dev<uint16_t> dW16(W16);
    std::vector<float> want(static_cast<size_t>(s.B * s.out));
    const std::string shape = std::to_string(s.B) + "x" + std::to_string(s.in) + "->" + std::to_string(s.out) +
                              (s.xp ? " (x P)" : " (W x)");
    blas.linear_f32(dW.p, s.xp, dX.p, dY.p, s.B, s.in, s.out);
    ref::linear_f32(W.data(), s.xp, X.data(), want.data(), s.B, s.in, s.out);
    check_err("linear_f32 " + shape, norm_err(dY.get(), want), 1e-5);
    blas.linear_bf16(dW16.p, s.xp, dX.p, dY.p, s.B, s.in, s.out);
    ref::linear_bf16(W16.data(), s.xp, X.data(), want.data(), s.B, s.in, s.out);
    check_err("linear_bf16 " + shape, norm_err(dY.get(), want), 1e-5);
  }
  // update GEMM: G = A_all B_all^T
  const int64_t m = 200, n = 150, K = 48;
  const auto A = rnd(size_t(m * K)), Bm = rnd(size_t(n * K));
  Dev<float> dA(A), dB(Bm), dG(static_cast<size_t>(m * n));
  blas.update_gemm(dA.p, dB.p, dG.p, m, n, K);
  std::vector<float> want(static_cast<size_t>(m * n));
  ref::linear_f32(Bm.data(), false, A.data(), want.data(), m, K, n);
  check_err("update_gemm 200x48 * (150x48)^T", norm_err(dG.get(), want), 1e-5);
}

void gpu_noise_ops() {
  const int64_t m = 130, n = 77, B = 9, pairs = 6;
  for (int rank : {1, 3})
    for (NoiseDist dist : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
      NoiseSpec ns;
      ns.seed = 99, ns.epoch_bucket = 4, ns.rank = rank, ns.dist = dist, ns.sigma = 0.03f;
      const uint32_t pid = 21;
      const int64_t len = (m + n) * rank;
      const std::string tag = std::string(" r=") + std::to_string(rank) + (dist == NoiseDist::Gaussian ? " gauss" : " rad");
      // cache
      Dev<float> dcache(static_cast<size_t>(pairs * len));
      cuda::fill_noise_cache(ns, pid, len, pairs, dcache.p);
      std::vector<float> cache(static_cast<size_t>(pairs * len));
      ref::fill_noise_cache(ns, pid, len, pairs, cache.data());
      check_err("fill_noise_cache" + tag, norm_err(dcache.get(), cache), 1e-5);
      dcache.up(cache);  // the same cache for both sides below
      auto members = rnd_int(size_t(B), 0, int32_t(2 * pairs - 1));
      Dev<int32_t> dm(members);
      for (bool xp : {false, true})
        for (bool cached : {false, true}) {
          const int64_t in = xp ? m : n, out = xp ? n : m;
          const auto X = rnd(size_t(B * in)), Y0 = rnd(size_t(B * out));
          Dev<float> dX(X), dY(Y0);
          cuda::lowrank_add(ns, pid, m, n, xp, dX.p, dY.p, dm.p, B, cached ? dcache.p : nullptr);
          auto want = Y0;
          ref::lowrank_add(ns, pid, m, n, xp, X.data(), want.data(), members.data(), B, cached ? cache.data() : nullptr);
          // compare the corrections (Y - Y0), the part the kernel computes
          auto got = dY.get();
          for (size_t j = 0; j < got.size(); j++) got[j] -= Y0[j], want[j] -= Y0[j];
          check_err(std::string("lowrank_add") + (xp ? " x P" : " W x") + (cached ? " cached" : " regen") + tag,
                    norm_err(got, want), 1e-5);
        }
      // embedding correction (emb [m = V, n = C])
      {
        const auto tok = rnd_int(size_t(B), 0, int32_t(m - 1));
        const auto X0 = rnd(size_t(B * n));
        Dev<int32_t> dt(tok);
        Dev<float> dX(X0);
        cuda::embedding_lowrank_add(ns, pid, m, n, dt.p, dX.p, dm.p, B, nullptr);
        auto want = X0;
        ref::embedding_lowrank_add(ns, pid, m, n, tok.data(), want.data(), members.data(), B, nullptr);
        auto got = dX.get();
        for (size_t j = 0; j < got.size(); j++) got[j] -= X0[j], want[j] -= X0[j];
        check_err("embedding_lowrank_add" + tag, norm_err(got, want), 1e-5);
      }
      // full-rank vector noise
      {
        const int64_t vn = 333;
        const auto base = rnd(size_t(vn));
        Dev<float> dbase(base), dout(static_cast<size_t>(B * vn));
        cuda::vector_noise_rows(ns, pid, dbase.p, vn, dm.p, B, nullptr, dout.p);
        std::vector<float> want(static_cast<size_t>(B * vn));
        ref::vector_noise_rows(ns, pid, base.data(), vn, members.data(), B, nullptr, want.data());
        check_err("vector_noise_rows" + tag, norm_err(dout.get(), want), 1e-5);
      }
      // update operands and the gradient
      {
        const int64_t N = 2 * pairs;
        const auto fit = rnd(size_t(N), -2, 2);
        Dev<float> dfit(fit), dA(static_cast<size_t>(m * pairs * rank)), dBm(static_cast<size_t>(n * pairs * rank));
        for (bool cached : {false, true}) {
          cuda::update_factors(ns, pid, m, n, dfit.p, N, 0, N / 2, cached ? dcache.p : nullptr, dA.p, dBm.p);
          std::vector<float> A(static_cast<size_t>(m * pairs * rank)), Bm(static_cast<size_t>(n * pairs * rank));
          ref::update_factors(ns, pid, m, n, fit.data(), N, 0, N / 2, cached ? cache.data() : nullptr, A.data(), Bm.data());
          check_err(std::string("update_factors A_all") + (cached ? " cached" : " regen") + tag, norm_err(dA.get(), A),
                    1e-5);
          check_err(std::string("update_factors B_all") + (cached ? " cached" : " regen") + tag, norm_err(dBm.get(), Bm),
                    1e-5);
        }
        const int64_t vn = 257;
        Dev<float> dg(static_cast<size_t>(vn));
        cuda::vector_gradient(ns, pid, vn, dfit.p, N, 0, N / 2, nullptr, dg.p);
        std::vector<float> g(static_cast<size_t>(vn));
        ref::vector_gradient(ns, pid, vn, fit.data(), N, 0, N / 2, nullptr, g.data());
        check_err("vector_gradient" + tag, norm_err(dg.get(), g), 1e-5);
      }
    }
  // the device gradient of a real matrix against es/eggroll.cpp eggroll_gradient
  {
    const Model mdl = tiny_model(5);
    const int pid = mdl.layers[1].ffn_key;
    ParamSelection sel;
    sel.lowrank.assign(mdl.params.size(), 0);
    sel.full.assign(mdl.params.size(), 0);
    sel.lowrank[size_t(pid)] = 1;
    NoiseConfig nc;
    nc.seed = 8, nc.rank = 2, nc.sigma = 0.02f;
    const std::vector<float> fit = {0.5f, -1.f, 2.f, 0.25f, -0.75f, 1.5f, 0.f, -2.f};
    std::vector<std::vector<float>> grads;
    eggroll_gradient(mdl, sel, nc, 3, fit, grads);
    const Param& P = mdl.params[size_t(pid)];
    NoiseSpec ns;
    ns.seed = nc.seed, ns.epoch_bucket = epoch_bucket(3, nc.noise_reuse), ns.rank = nc.rank, ns.dist = nc.dist,
    ns.sigma = nc.sigma;
    const int64_t N = int64_t(fit.size()), K = N / 2 * nc.rank;
    Dev<float> dfit(fit), dA(static_cast<size_t>(P.rows * K)), dB(static_cast<size_t>(P.cols * K)), dG(P.numel());
    cuda::CudaBackend be;
    be.update_factors(ns, uint32_t(pid), P.rows, P.cols, dfit.p, N, 0, N / 2, nullptr, dA.p, dB.p);
    be.update_gemm(dA.p, dB.p, dG.p, P.rows, P.cols, K);
    check_err("update_factors + update_gemm == eggroll_gradient", norm_err(dG.get(), grads[size_t(pid)]), 1e-5);
  }
}

void gpu_optim_fitness() {
  const int64_t n = 100003;
  const auto g = rnd(size_t(n)), w0 = rnd(size_t(n)), m0 = rnd(size_t(n), -0.01f, 0.01f), v0 = rnd(size_t(n), 0, 1e-4f);
  Dev<float> dg(g), dw(w0), dm(m0), dv(v0);
  Dev<double> sq(static_cast<size_t>(cuda::kReduceBlocks + 1));
  Dev<uint16_t> wbf(static_cast<size_t>(n));
  cuda::sum_squares(dg.p, n, sq.p);
  const double ss = sq.get()[0], ss_ref = ref::sum_squares(g.data(), n);
  check_err("sum_squares (double)", std::fabs(ss - ss_ref) / ss_ref, 1e-12);
  // SGD
  cuda::sgd_update(dw.p, dg.p, n, 0.125, 0.7, sq.p, wbf.p);
  auto w = w0;
  const double sq_ref = ref::sgd_update(w.data(), g.data(), n, 0.125, 0.7);
  const auto gw = dw.get();
  check_err("sgd_update weights", norm_err(gw, w), 1e-6);
  check_err("sgd_update |dW|^2", std::fabs(sq.get()[0] - sq_ref) / sq_ref, 1e-5);
  std::vector<uint16_t> bits(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; j++) bits[size_t(j)] = f32_to_bf16(gw[size_t(j)]);
  report(same(wbf.get(), bits), "sgd_update bf16 copy == round(w)", "identical");
  // Adam and AdamW (step 3: bias corrections as Optimizer computes them)
  for (bool adamw : {false, true}) {
    dw.up(w0), dm.up(m0), dv.up(v0);
    const double b1 = 0.9, b2 = 0.999, bc1 = 1 - std::pow(b1, 3.0), bc2 = 1 - std::pow(b2, 3.0);
    cuda::adam_update(dw.p, dg.p, dm.p, dv.p, n, 1e-3, b1, b2, 1e-8, 0.01, adamw, bc1, bc2, 1.0, sq.p, nullptr);
    auto ww = w0, mm = m0, vv = v0;
    const double q = ref::adam_update(ww.data(), g.data(), mm.data(), vv.data(), n, 1e-3, b1, b2, 1e-8, 0.01, adamw,
                                      bc1, bc2, 1.0);
    const std::string nm = adamw ? "adamw" : "adam";
    check_err(nm + "_update weights", norm_err(dw.get(), ww), 1e-6);
    check_err(nm + "_update moments", std::max(norm_err(dm.get(), mm), norm_err(dv.get(), vv)), 1e-6);
    check_err(nm + "_update |dW|^2", std::fabs(sq.get()[0] - q) / q, 1e-5);
  }
  // fitness shaping: z-score and ranks, with ties and non-finite rewards
  for (bool rank : {false, true}) {
    const int64_t G = 64, P = 3;
    auto rw = rnd(size_t(G * P), 0, 1);
    for (size_t j = 0; j < rw.size(); j += 7) rw[j] = std::round(rw[j] * 2.f) / 2.f;  // ties
    rw[5] = NAN, rw[9] = INFINITY, rw[20] = -INFINITY;
    Dev<float> dr(rw), dfit(static_cast<size_t>(G));
    Dev<double> dscore(static_cast<size_t>(G));
    cuda::shape_fitness(dr.p, G, P, rank, dfit.p, dscore.p);
    const FitnessResult want = shape_fitness(std::span<const float>(rw), size_t(G),
                                             rank ? FitnessShaping::CenteredRank : FitnessShaping::ZScore);
    report(same(dscore.get(), want.direction_score), std::string("shape_fitness direction sums") + (rank ? " (rank)" : ""),
           "identical");
    if (rank) report(same(dfit.get(), want.fitness), "shape_fitness centered ranks", "identical");
    else check_err("shape_fitness z-score", norm_err(dfit.get(), want.fitness), 1e-5);
  }
}

void gpu_sampling() {
  for (int64_t V : {int64_t(1000), int64_t(65536)}) {
    const int64_t rows = 24;
    auto lg = rnd(size_t(rows * V), -8, 8);
    // special rows: ties at the max, NaNs, all -inf, all NaN, +inf
    for (int64_t j = 0; j < V; j++) lg[size_t(V + j)] = float(j % 5);
    lg[size_t(2 * V + 3)] = NAN, lg[size_t(2 * V + 7)] = 100.f;
    for (int64_t j = 0; j < V; j++) lg[size_t(3 * V + j)] = -INFINITY;
    for (int64_t j = 0; j < V; j++) lg[size_t(4 * V + j)] = NAN;
    lg[size_t(5 * V + V / 2)] = INFINITY;
    Dev<float> dl(lg);
    Dev<int32_t> out(static_cast<size_t>(rows));
    std::vector<int32_t> want(static_cast<size_t>(rows));
    cuda::argmax_rows(dl.p, rows, V, out.p);
    ref::argmax_rows(lg.data(), rows, V, want.data());
    report(same(out.get(), want), "argmax_rows V=" + std::to_string(V), "ties, NaN, -inf rows identical");
    std::vector<uint64_t> seeds(static_cast<size_t>(rows)), ctrs(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; i++) seeds[size_t(i)] = uint64_t(1000 + 7 * i), ctrs[size_t(i)] = uint64_t(i % 5);
    Dev<uint64_t> dseed(seeds), dctr(ctrs);
    struct P {
      float t;
      int k;
      float p;
    };
    for (P p : {P{0.f, 0, 1.f}, P{0.7f, 0, 1.f}, P{1.f, 40, 1.f}, P{0.8f, 0, 0.9f}, P{1.3f, 100, 0.5f}, P{1.f, 1, 1.f}}) {
      cuda::sample_rows(dl.p, rows, V, p.t, p.k, p.p, dseed.p, dctr.p, out.p);
      ref::sample_rows(lg.data(), rows, V, p.t, p.k, p.p, seeds.data(), ctrs.data(), want.data());
      const auto got = out.get();
      int diff = 0;
      for (int64_t i = 0; i < rows; i++) diff += got[size_t(i)] != want[size_t(i)];
      char buf[64];
      std::snprintf(buf, sizeof buf, "%d of %lld rows differ", diff, static_cast<long long>(rows));
      report(diff == 0,
             "sample_rows V=" + std::to_string(V) + " T=" + std::to_string(p.t).substr(0, 3) + " k=" +
                 std::to_string(p.k) + " p=" + std::to_string(p.p).substr(0, 3),
             buf);
    }
  }
}

// The whole step on the device against the CPU step (and the float64 fixtures).
void gpu_forward() {
  CpuBackend cpu;
  for (const auto& name : test::rwkv_fixtures()) {
    const auto [m, c, ref64] = load_fixture(name);
    const auto want = opstep_logits(cpu, host_step_weights(m), c, 1, nullptr);
    {
      cuda::CudaBackend be;
      BackendModel dm(be, m, DType::F32);
      BatchState st_cpu, st_dev;
      opstep_logits(cpu, host_step_weights(m), c, 1, nullptr, &st_cpu);
      const auto got = opstep_logits(be, dm.weights(), c, 1, nullptr, &st_dev);
      check_err("device step f32 vs cpu step: " + name, norm_err(got, want), 1e-4);
      check_err("device step f32 vs float64 fixture: " + name, max_abs(got, ref64), 1e-3);
      check_err("device step f32 final state: " + name, norm_err(st_dev.wkv, st_cpu.wkv), 1e-4);
    }
    {
      // bf16 matrices: against the CPU step with the same bf16 matrices and bf16-rounded inputs
      cuda::CudaBackend model_be;
      BackendModel dm(model_be, m, DType::BF16);
      ModelWeights hw = host_step_weights(m);
      std::vector<std::vector<uint16_t>> bits(m.params.size());
      for (size_t pid = 0; pid < m.params.size(); pid++) {
        if (!m.params[pid].is_matrix) continue;
        bits[pid].resize(m.params[pid].numel());
        for (size_t j = 0; j < bits[pid].size(); j++) bits[pid][j] = f32_to_bf16(m.params[pid].data[j]);
        hw.params[pid].data = bits[pid].data();
        hw.params[pid].dtype = DType::BF16;
      }
      cuda::CudaBackend be;
      const auto want16 = opstep_logits(cpu, hw, c, 1, nullptr);
      const auto got = opstep_logits(be, dm.weights(), c, 1, nullptr);
      check_err("device step bf16 vs cpu step bf16: " + name, norm_err(got, want16), 5e-3);
      // information only: how far bf16 activations move the logits from the fp32 model
      char buf[64];
      std::snprintf(buf, sizeof buf, "max |bf16 - f32| = %.3g (bound 0.5)", max_abs(got, want));
      report(max_abs(got, want) < 0.5, "device step bf16 vs f32 model: " + name, buf);
    }
  }
  // batches with permuted slots and a logit subset; the decoder's greedy continuation
  {
    const Model m = Model::load(fx("rwkv7/rand-l3-d256-v1024.pth"));
    cuda::CudaBackend be;
    BackendModel dm(be, m, DType::F32);
    for (bool subset : {false, true}) {
      const auto c = batch_case(7, 4, m.cfg.vocab, subset);
      const auto want = opstep_logits(cpu, host_step_weights(m), c, 7, nullptr);
      const auto got = opstep_logits(be, dm.weights(), c, 7, nullptr);
      check_err(std::string("device step batch 7") + (subset ? ", logit subset" : ""), norm_err(got, want), 1e-4);
    }
    // greedy continuation on the device (the decoder: Decoder + generate) == the fixture's
    const auto meta = test::read_json(fx("rwkv7/rand-l3-d256-v1024.json"));
    const auto prompt = meta["greedy_prompt"].get<std::vector<int32_t>>();
    const auto cont = meta["greedy_continuation"].get<std::vector<int32_t>>();
    Decoder stepper(be, dm.weights(), 1);
    GenOptions gopt;
    gopt.max_tokens = int(cont.size());
    gopt.stop_on_eod = false;
    const GenRequest req{prompt, 0, 0};
    const std::vector<int32_t> gen = generate(stepper, std::span(&req, 1), gopt)[0].tokens;
    report(gen == cont, "device greedy continuation == fixture", std::to_string(cont.size()) + " tokens");
  }
  // EGGROLL perturbation on the device (generated and cached noise) against the CPU step
  {
    const Model m = tiny_model(3);
    for (bool freeze : {true, false})
      for (bool keep : {true, false}) {
        auto sel = select_params(m, {"*"}, {}, freeze);
        NoiseConfig nc;
        nc.seed = 11, nc.rank = 2, nc.sigma = 0.05f;
        const int G = 6;
        std::vector<std::vector<float>> storage;
        const StepPerturbation hp = host_perturbation(m, sel, nc, 5, G, keep, storage);
        cuda::CudaBackend noise_be;
        EggrollPerturbation dp(m, sel, nc, keep ? NoiseCache::Keep : NoiseCache::Regenerate, &noise_be);
        dp.begin_step(5, G);
        auto c = batch_case(G, 3, m.cfg.vocab, false);
        c.members = {3, 0, 5, 1, 4, 2};
        const auto want = opstep_logits(cpu, host_step_weights(m), c, G, &hp);
        cuda::CudaBackend be;
        BackendModel dm(be, m, DType::F32);
        const auto got = opstep_logits(be, dm.weights(), c, G, &dp.step());
        check_err(std::string("device step perturbed") + (freeze ? "" : " +vectors") + (keep ? ", cached" : ", regenerated"),
                  norm_err(got, want), 1e-4);
      }
  }
}

// The whole ES step (perturbed rollouts, host scoring, fitness, update, optimizer) through an
// OpsEngine on the CUDA backend against the same engine on the CPU reference backend (which
// tests/test_ops_engine.cpp checks bit for bit against the CPU trainer).
void gpu_es_step() {
  const Model m0 = tiny_model(4);
  auto prompts = [&](int G) {
    std::vector<GenRequest> r;
    for (int j = 0; j < G; j++) r.push_back({{int32_t(1 + j % 5), int32_t(7 + j % 3)}, 100 + uint64_t(j), j});
    return r;
  };
  for (bool freeze : {true, false})
    for (OptimKind kind : {OptimKind::SGD, OptimKind::Adam}) {
      const std::string tag = std::string(freeze ? "" : " +vectors") + (kind == OptimKind::SGD ? ", sgd" : ", adam");
      Model mc = m0, md = m0;
      const ParamSelection sel = select_params(m0, {"*"}, {"emb.weight"}, freeze);
      NoiseConfig nc;
      nc.seed = 7, nc.rank = 2, nc.sigma = 0.05f;
      OptimConfig oc;
      oc.kind = kind;
      Optimizer oc_cpu(oc, mc, sel), oc_dev(oc, md, sel);
      OpsEngineOptions eo;
      eo.max_rows = 8;
      CpuBackend cpu;
      cuda::CudaBackend dev;
      OpsEngine ec(cpu, mc, sel, nc, oc, oc_cpu, eo), ed(dev, md, sel, nc, oc, oc_dev, eo);
      GenOptions g;
      g.max_tokens = 8;
      int same_tokens = 0, total = 0;
      for (int step = 0; step < 2; step++) {
        const int G = 8;
        ec.begin_step(uint64_t(step), G, nc.sigma);
        ed.begin_step(uint64_t(step), G, nc.sigma);
        const auto reqs = prompts(G);
        const auto rc = ec.generate(reqs, g, true), rd = ed.generate(reqs, g, true);
        std::vector<double> rewards;
        for (int j = 0; j < G; j++) {
          same_tokens += rc[size_t(j)].tokens == rd[size_t(j)].tokens;
          total++;
          double r = 0;
          for (int32_t t : rc[size_t(j)].tokens) r += t % 2;  // the CPU rollouts score both
          rewards.push_back(r);
        }
        const auto fit = shape_fitness(std::span<const double>(rewards), size_t(G), FitnessShaping::ZScore);
        const StepReport a = ec.update(fit.fitness, 0, G / 2, nullptr, 0.05), b = ed.update(fit.fitness, 0, G / 2, nullptr, 0.05);
        check_err("es step grad norm" + tag, std::fabs(a.grad_norm - b.grad_norm) / std::max(a.grad_norm, 1e-30), 1e-5);
      }
      report(same_tokens == total, "es step greedy perturbed rollouts equal" + tag,
             std::to_string(same_tokens) + " of " + std::to_string(total));
      ec.to_host(mc, oc_cpu);
      ed.to_host(md, oc_dev);
      double worst = 0;
      for (int pid : sel.ids()) worst = std::max(worst, norm_err(md.params[size_t(pid)].data, mc.params[size_t(pid)].data));
      check_err("es step updated weights" + tag, worst, 1e-5);
      // and the device weights the forward reads are the updated ones
      const auto reqs = prompts(4);
      const auto pc = ec.generate(reqs, g, false), pd = ed.generate(reqs, g, false);
      int eq = 0;
      for (size_t j = 0; j < reqs.size(); j++) eq += pc[j].tokens == pd[j].tokens;
      report(eq == int(reqs.size()), "es step greedy rollouts after the update" + tag, std::to_string(eq) + " of 4");
    }
  // bf16 matrices: the same update applied to the fp32 masters
  {
    Model mc = m0, md = m0;
    const ParamSelection sel = select_params(m0, {"*"}, {"emb.weight", "head.weight"}, true);
    NoiseConfig nc;
    nc.seed = 7, nc.rank = 1, nc.sigma = 0.05f;
    Optimizer o1({}, mc, sel), o2({}, md, sel);
    OpsEngineOptions eo;
    eo.max_rows = 8;
    eo.matrix_dtype = DType::BF16;
    CpuBackend cpu;
    cuda::CudaBackend dev;
    OpsEngine ec(cpu, mc, sel, nc, {}, o1, eo), ed(dev, md, sel, nc, {}, o2, eo);
    ec.begin_step(0, 8, nc.sigma);
    ed.begin_step(0, 8, nc.sigma);
    const std::vector<float> fit = {1, -1, 0.5f, 0.25f, -0.5f, 2, 0, -2};
    ec.update(fit, 0, 4, nullptr, 0.1);
    ed.update(fit, 0, 4, nullptr, 0.1);
    ec.to_host(mc, o1);
    ed.to_host(md, o2);
    double worst = 0;
    for (int pid : sel.ids()) worst = std::max(worst, norm_err(md.params[size_t(pid)].data, mc.params[size_t(pid)].data));
    check_err("es step bf16 masters updated", worst, 1e-5);
  }
}

#endif  // EGGROLL_HAVE_CUDA

int summary() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool cpu_only = mode == "--cpu-only";
  if (!mode.empty() && !cpu_only) {
    std::fprintf(stderr, "usage: gpu_ops_main [--cpu-only]\n");
    return 2;
  }
  try {
    if (cpu_only) {
      cpu_checks();
      return summary();
    }
#if EGGROLL_HAVE_CUDA
    if (cuda::device_count() == 0) {
      std::printf("SKIPPED: no CUDA device\n");
      return 77;
    }
    std::printf("device: %s\n", cuda::device_name(0).c_str());
    gpu_philox();
    gpu_model_ops();
    gpu_gemm();
    gpu_noise_ops();
    gpu_optim_fitness();
    gpu_sampling();
    gpu_forward();
    gpu_es_step();
    return summary();
#else
    std::printf("SKIPPED: no CUDA device (built without the CUDA backend)\n");
    return 77;
#endif
  } catch (const std::exception& e) {
    std::printf("FAIL %-56s %s\n", "exception", e.what());
    g_failed++;
    summary();
    return 1;
  }
}
