// GPU step tests: the whole device step (rwkv/step.h ModelStep on the CUDA backend) against the
// CPU step and the float64 fixture logits, then whole ES steps (es/population_engine.h: perturbed
// rollouts, update, optimizer) on the CUDA backend against the CPU backend. Single-op comparisons
// are the op table's (tests/test_backend_ops.cpp). One line per check, then "N passed, N failed".
//
//   gpu_ops_main             GPU checks; exit 77 ("SKIPPED: no CUDA device") where no GPU is
//                            usable or the build has no CUDA; 1 if any check fails
//   gpu_ops_main --cpu-only  CPU checks of the op-level step as the GPU checks drive it (ModelStep
//                            on the CPU backend, unpacked weights, a hand-built perturbation)
//                            against Forward (packed panels, Perturbation) and the
//                            fixtures; these run everywhere
//
// Tolerances. Error = max |gpu - ref| / max |ref| over the output ("normalised"):
//   whole step (fp32)         <= 1e-4 against the CPU step (errors of ~100 ops per layer compound),
//                             and the fixture logits within 1e-3 of float64 (the CPU forward's test)
//   whole step (bf16 weights) <= 5e-3 against the CPU step with the same bf16 weights: both round
//                             activations to bf16 before each product, and fp32 values that differ
//                             in the last bits can round to neighbouring bf16 values (2^-8 apart)
//   ES step grad norm, updated weights: <= 1e-5 relative; greedy rollouts: identical tokens
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
#include "es/optim.h"
#include "es/perturbation.h"
#include "es/fitness.h"
#include "es/noise.h"
#include "es/population_engine.h"
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
std::vector<float> forward_logits(const Model& m, const StepCase& c, int nslots, const PerturbationView* pert) {
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
                                 const PerturbationView* pert, BatchState* final_state = nullptr) {
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

// Host-side PerturbationView equal to Perturbation(m, sel, nc, cache) at step `epoch`;
// the cache (when keep) in `storage`.
PerturbationView host_perturbation(const Model& m, const ParamSelection& sel, const NoiseConfig& nc, uint64_t epoch,
                                   int directions, bool keep, std::vector<std::vector<float>>& storage) {
  PerturbationView p;
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
        Perturbation ep(m, sel, nc, keep ? NoiseCache::Keep : NoiseCache::Regenerate);
        ep.begin_step(5, G);
        std::vector<std::vector<float>> storage;
        const PerturbationView sp = host_perturbation(m, sel, nc, 5, G, keep, storage);
        auto c = batch_case(G, 3, m.cfg.vocab, false);
        c.members = {3, 0, 5, 1, 4, 2};
        const auto want = forward_logits(m, c, G, &ep.view());
        const auto got = opstep_logits(cpu, host_step_weights(m), c, G, &sp);
        check_err(std::string("cpu opstep == forward: perturbed") + (freeze ? "" : " +vectors") +
                      (keep ? ", cached" : ", regenerated"),
                  max_abs(got, want), 1e-6);
      }
  }
}

#if EGGROLL_HAVE_CUDA

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
        const PerturbationView hp = host_perturbation(m, sel, nc, 5, G, keep, storage);
        cuda::CudaBackend noise_be;
        Perturbation dp(m, sel, nc, keep ? NoiseCache::Keep : NoiseCache::Regenerate, &noise_be);
        dp.begin_step(5, G);
        auto c = batch_case(G, 3, m.cfg.vocab, false);
        c.members = {3, 0, 5, 1, 4, 2};
        const auto want = opstep_logits(cpu, host_step_weights(m), c, G, &hp);
        cuda::CudaBackend be;
        BackendModel dm(be, m, DType::F32);
        const auto got = opstep_logits(be, dm.weights(), c, G, &dp.view());
        check_err(std::string("device step perturbed") + (freeze ? "" : " +vectors") + (keep ? ", cached" : ", regenerated"),
                  norm_err(got, want), 1e-4);
      }
  }
}

// The whole ES step (perturbed rollouts, host scoring, fitness, update, optimizer) through an
// PopulationEngine on the CUDA backend against the same engine on the CPU reference backend (which
// tests/test_population_engine.cpp checks bit for bit against the CPU trainer).
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
      PopulationEngineOptions eo;
      eo.max_rows = 8;
      CpuBackend cpu;
      cuda::CudaBackend dev;
      PopulationEngine ec(cpu, mc, sel, nc, oc, eo), ed(dev, md, sel, nc, oc, eo);
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
      ec.to_host(mc);
      ed.to_host(md);
      if (kind == OptimKind::SGD) {
        double worst = 0;
        for (int pid : sel.ids())
          worst = std::max(worst, norm_err(md.params[size_t(pid)].data, mc.params[size_t(pid)].data));
        check_err("es step updated weights" + tag, worst, 1e-5);
      } else {
        // Adam divides the first moment by sqrt(v): where an element's gradient is ~0 its sign
        // and size come down to rounding (cuBLAS and the CPU GEMM sum the update GEMM in other
        // orders), and m / sqrt(v) there can differ by up to 2 per step. So: the moments (linear
        // in the gradients) to 1e-5 of their largest; the weights to 1e-3 of lr per step wherever
        // sqrt(v) is at least 1e-2 of the parameter's largest (a moment error of ~1e-5 of the
        // largest, divided by such a sqrt(v), moves m / sqrt(v) by up to ~1e-3: the CPU and the GPU
        // round the update GEMM's sums differently); the elements below that are counted, not
        // held. Measured on an H200 (2026-12-04): moments 2.8e-7, weights 1.1e-4 and 2.8e-4.
        const StateDict sc = ec.optimizer_state(), sd = ed.optimizer_state();
        double worst_m = 0, worst_w = 0;
        size_t tiny = 0, total_el = 0;
        for (int pid : sel.ids()) {
          const Param& p = m0.params[size_t(pid)];
          const auto vc = sc.at("v." + p.name, "cpu").to_f32(), vd = sd.at("v." + p.name, "cuda").to_f32();
          const auto mcpu = sc.at("m." + p.name, "cpu").to_f32(), mdev = sd.at("m." + p.name, "cuda").to_f32();
          worst_m = std::max({worst_m, norm_err(mdev, mcpu), norm_err(vd, vc)});
          double vmax = 0;
          for (float v : vc) vmax = std::max(vmax, std::sqrt(double(v)));
          for (size_t i = 0; i < vc.size(); i++) {
            total_el++;
            if (std::sqrt(double(vc[i])) < 1e-2 * vmax) {
              tiny++;
              continue;
            }
            worst_w = std::max(worst_w, std::fabs(double(md.params[size_t(pid)].data[i]) -
                                                  double(mc.params[size_t(pid)].data[i])) / (0.05 * 2));
          }
        }
        check_err("es step Adam moments" + tag, worst_m, 1e-5);
        check_err("es step updated weights (sqrt v >= 1e-2 of max; " + std::to_string(tiny) + " of " +
                      std::to_string(total_el) + " below)" + tag,
                  worst_w, 1e-3);
      }
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
    PopulationEngineOptions eo;
    eo.max_rows = 8;
    eo.matrix_dtype = DType::BF16;
    CpuBackend cpu;
    cuda::CudaBackend dev;
    PopulationEngine ec(cpu, mc, sel, nc, {}, eo), ed(dev, md, sel, nc, {}, eo);
    ec.begin_step(0, 8, nc.sigma);
    ed.begin_step(0, 8, nc.sigma);
    const std::vector<float> fit = {1, -1, 0.5f, 0.25f, -0.5f, 2, 0, -2};
    ec.update(fit, 0, 4, nullptr, 0.1);
    ed.update(fit, 0, 4, nullptr, 0.1);
    ec.to_host(mc);
    ed.to_host(md);
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
  // The CPU side is the exact bf16 reference (not the AMX tiles, which round their sums their own way).
  setenv("EGGROLL_BF16_KERNEL", "exact", 1);
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
