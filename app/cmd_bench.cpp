// Benchmarks: JSON lines on stdout, every ratio measured in the same run.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include "core/error.h"
#include "core/cpu_backend.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/noise.h"
#include "core/ops/wkv7.h"
#include "core/parallel.h"
#include "rwkv/backend_model.h"
#include "rwkv/decoder.h"
#include "rwkv/step.h"
#include "app/bench_cuda.h"
#include "app/commands.h"
#include "es/optim.h"
#include "es/perturbation.h"
#include "rwkv/forward.h"
#include "rwkv/step.h"
#include "rwkv/model.h"

namespace eggroll {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs fn repeatedly (after one warm-up call) for at least min_seconds and min_iters; returns seconds per call.
template <class F>
double time_per_call(F&& fn, double min_seconds, int min_iters) {
  fn();
  int iters = 0;
  const double t0 = now_s();
  double t = t0;
  while (iters < min_iters || t - t0 < min_seconds) {
    fn();
    iters++;
    t = now_s();
  }
  return (t - t0) / iters;
}

// Competing load for the "loaded" measurements: n child processes that spin on a CPU each (a
// busy process of someone else on a shared machine), started by start() and killed by stop().
// A child dies with the bench (PR_SET_PDEATHSIG), so none outlives an interrupted run.
class CompetingLoad {
 public:
  explicit CompetingLoad(int n) : n_(n) {}
  CompetingLoad(const CompetingLoad&) = delete;
  CompetingLoad& operator=(const CompetingLoad&) = delete;
  ~CompetingLoad() { stop(); }
  void start() {
    const pid_t parent = getpid();
    for (int i = 0; i < n_; i++) {
      const pid_t pid = fork();
      if (pid < 0) {
        stop();
        throw std::runtime_error("--competing-load: fork failed");
      }
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        volatile uint64_t x = 0;
        for (;;) x = x + 1;
      }
      pids_.push_back(pid);
    }
    // let the scheduler place them before the measurement starts
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  void stop() {
    for (pid_t p : pids_) kill(p, SIGKILL);
    for (pid_t p : pids_) waitpid(p, nullptr, 0);
    pids_.clear();
  }

 private:
  int n_;
  std::vector<pid_t> pids_;
};

// Runs fn with the competing load running.
template <class F>
auto with_load(int n, F&& fn) {
  CompetingLoad load(n);
  load.start();
  auto r = fn();
  load.stop();
  return r;
}

nlohmann::json rates(const std::vector<double>& v) { return nlohmann::json(v); }

// Memory passes for the bounds bench forward reports: one read of `words` 64-bit words, or one
// read and write back of the same values, over all threads (8 independent accumulators per
// chunk, so the loads, not the sums, set the pace).
volatile uint64_t g_sink = 0, g_zero = 0;
void read_pass(const uint64_t* p, int64_t words) {
  std::atomic<uint64_t> all{0};
  parallel_for_chunks(words, std::max<int64_t>(4096, words / (8 * int64_t(num_threads()))), [&](int64_t b, int64_t e) {
    uint64_t a[8] = {};
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
      for (int u = 0; u < 8; u++) a[u] ^= p[i + u];
    for (; i < e; i++) a[0] ^= p[i];
    all ^= a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
  });
  g_sink = g_sink ^ all.load();
}
void read_write_pass(uint64_t* p, int64_t words) {
  const uint64_t z = g_zero;  // 0, unknown to the compiler: the stores are not elided
  parallel_for_chunks(words, std::max<int64_t>(4096, words / (8 * int64_t(num_threads()))), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) p[i] ^= z;
  });
}

// Peak resident memory of this process (bytes; Linux ru_maxrss is in KiB).
// Linux: VmHWM of /proc/self/status, which reset_peak_rss() lowers to the current resident size;
// elsewhere ru_maxrss.
uint64_t peak_rss_bytes() {
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    unsigned long long kib = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f)) found = std::sscanf(line, "VmHWM: %llu kB", &kib) == 1;
    std::fclose(f);
    if (found) return uint64_t(kib) * 1024;
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return uint64_t(u.ru_maxrss) * 1024;
}
// Sets the peak to the current resident size (Linux 4.0+: clear_refs 5); false where it cannot.
bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

// Bytes of the matrices' prepared forms (the CPU's panels), when the plain arrays are gone or not.
uint64_t prepared_bytes(const ModelWeights& w) {
  uint64_t b = 0;
  for (const ProductMatrix& p : product_matrices(w)) {
    const WeightView& v = w.params[size_t(p.pid)];
    if (v.prepared) b += uint64_t(v.rows * v.cols) * (v.dtype == DType::BF16 ? 2 : 4);
  }
  return b;
}

}  // namespace

double gemm_flops_per_token(const ModelWeights& m) {
  double f = 0;
  for (const ProductMatrix& g : product_matrices(m)) f += 2.0 * double(m.params[size_t(g.pid)].rows * m.params[size_t(g.pid)].cols);
  return f;
}

void register_bench_commands(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (JSON lines on stdout)");
  bench->require_subcommand(1);
  auto* c = bench->add_subcommand("forward", "Batched forward throughput vs a plain GEMM of the same shapes");
  struct Opts {
    std::string preset = "0.1b", batch = "1,16,64,256", dtype = "f32";
    double seconds = 2.0;
    int threads = 0, competing_load = 0, repeat = 1;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("--preset", o->preset, "model size preset (random weights)");
  c->add_option("--batch", o->batch, "comma-separated batch sizes");
  c->add_option("--dtype", o->dtype, "matrix dtype: f32, or bf16 (bf16 panels, core/gemm_bf16.h)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  c->add_option("--seconds", o->seconds, "minimum timed seconds per measurement")->check(CLI::Range(0.0, 3600.0));
  c->add_option("--threads", o->threads, "CPU threads (0 = all)")->check(CLI::Range(0, 4096));
  c->add_option("--competing-load", o->competing_load,
                "also measure with N busy-spinning processes running (quiet and loaded interleaved)")
      ->check(CLI::Range(0, 1024));
  c->add_option("--repeat", o->repeat, "interleaved repetitions (quiet, loaded); the best of each counts")
      ->check(CLI::Range(1, 100));
  c->callback([=] {
    auto batches = parse_int_list("--batch", o->batch);
    for (auto b : batches)
      if (b < 1 || b > 65536) throw InputError(fmt::format("--batch: {} is not in [1, 65536]", b));
    set_num_threads(o->threads);
    const DType dt = o->dtype == "bf16" ? DType::BF16 : DType::F32;
    ModelConfig cfg = ModelConfig::preset(o->preset);
    fmt::print(stderr, "bench forward: building random {} model ({:.0f}M params, {} matrices{})\n", o->preset,
               double(cfg.param_count()) / 1e6, dtype_name(dt),
               dt == DType::BF16 ? fmt::format(", {} kernel", bf16_kernel_name(best_bf16_kernel())) : "");
    // the weights as training holds them: made in the backend, products prepared (fp32 or bf16
    // panels; bf16 matrices are then stored only as panels)
    CpuBackend be;
    BackendModel model(be, cfg, 1, dt);
    model.prepare_products();
    const ModelWeights& w = model.weights();
    const double flops_tok = gemm_flops_per_token(w);
    // The memory bound of a step that reads every product matrix once (batch 1 is bound by it):
    // one read of as many bytes as the matrices hold (prepared form), same threads. The buffer is
    // freed and the peak RSS reset before any forward is measured, so peak_rss_bytes excludes it
    // (where the reset fails, peak_rss_reset is false and the peak includes it).
    const uint64_t product_bytes = uint64_t(flops_tok / 2) * (dt == DType::BF16 ? 2 : 4);
    double t_read = 0;
    bool rss_reset = false;
    const uint64_t build_peak = peak_rss_bytes();  // making the model (its transients included)
    {
      std::vector<uint64_t> buf(product_bytes / 8 + 1);
      parallel_for_chunks(int64_t(buf.size()), 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) buf[size_t(i)] = uint64_t(i) * 0x9E3779B97F4A7C15ull;
      });
      t_read = time_per_call([&] { read_pass(buf.data(), int64_t(buf.size())); }, std::min(o->seconds, 1.0), 3);
    }
    rss_reset = reset_peak_rss();
    for (int64_t B : batches) {
      BackendState st(be, cfg, int(B));
      ModelStep step(be, w, B);
      std::vector<int32_t> toks(static_cast<size_t>(B)), slots(static_cast<size_t>(B));
      for (int64_t i = 0; i < B; i++) toks[size_t(i)] = int32_t((i * 7919) % cfg.vocab), slots[size_t(i)] = int32_t(i);
      std::vector<float> logits(size_t(B) * size_t(cfg.vocab));
      auto one_step = [&] { step.step(toks.data(), slots.data(), slots.data(), B, st.view(), logits.data()); };
      double t_fwd = 1e300, t_loaded = 1e300;
      std::vector<double> quiet_rates, loaded_rates;
      for (int rep = 0; rep < o->repeat; rep++) {
        const double t = time_per_call(one_step, o->seconds, 2);
        t_fwd = std::min(t_fwd, t);
        quiet_rates.push_back(double(B) / t);
        if (o->competing_load > 0) {
          const double tl = with_load(o->competing_load, [&] { return time_per_call(one_step, o->seconds, 2); });
          t_loaded = std::min(t_loaded, tl);
          loaded_rates.push_back(double(B) / tl);
        }
      }
      // the process's peak so far, the buffer above and the bench's own buffers below excluded
      const uint64_t peak_rss = std::max(build_peak, peak_rss_bytes());
      // the same products on their own, same kernels, same prepared weights, same threads
      const auto gemms = product_matrices(w);  // the step's products, each once
      int64_t max_in = 0, max_out = 0;
      for (auto& g : gemms) {
        const WeightView& P = w.params[size_t(g.pid)];
        max_in = std::max(max_in, g.x_times_p ? P.rows : P.cols);
        max_out = std::max(max_out, g.x_times_p ? P.cols : P.rows);
      }
      std::vector<float> X(size_t(B * max_in), 0.01f), Y;
      float* y = logits.data();  // B x vocab: the widest output
      if (max_out > cfg.vocab) Y.resize(size_t(B * max_out)), y = Y.data();
      const double t_gemm = time_per_call(
          [&] {
            for (auto& g : gemms) be.linear(w.params[size_t(g.pid)], g.x_times_p, X.data(), y, B);
          },
          o->seconds, 2);
      // the batch's WKV-7 state read and written once (a step does that once per layer, all
      // layers together exactly this), and the forward / GEMM ratio that leaves at best
      const int64_t state_floats = B * int64_t(cfg.n_layer) * cfg.n_head * kWkvHeadState;
      const double t_state = time_per_call(
          [&] { read_write_pass(reinterpret_cast<uint64_t*>(st.view().wkv), state_floats / 2); }, o->seconds / 4, 3);
      nlohmann::json j = {{"bench", "forward"},
                          {"preset", o->preset},
                          {"dtype", dtype_name(dt)},
                          {"kernel", dt == DType::BF16 ? bf16_kernel_name(best_bf16_kernel()) : "f32"},
                          {"batch", B},
                          {"threads", num_threads()},
                          {"parallel", parallel_backend()},
                          {"tokens_per_s", double(B) / t_fwd},
                          {"ms_per_step", t_fwd * 1e3},
                          {"gflops", flops_tok * double(B) / t_fwd / 1e9},
                          {"gemm_gflops", flops_tok * double(B) / t_gemm / 1e9},
                          {"ratio_vs_gemm", t_gemm / t_fwd},
                          {"weights_bytes", model.bytes() + prepared_bytes(w)},
                          {"peak_rss_bytes", peak_rss},
                          {"peak_rss_reset", rss_reset},
                          {"product_bytes", product_bytes},
                          {"product_read_ms", t_read * 1e3},
                          {"read_bound_tokens_per_s", double(B) / t_read},
                          {"state_bytes", uint64_t(state_floats) * 4},
                          {"state_rw_ms", t_state * 1e3},
                          {"ratio_vs_gemm_bound", t_gemm / (t_gemm + t_state)}};
      if (o->competing_load > 0) {
        j["competing_load"] = o->competing_load;
        j["repeat"] = o->repeat;
        j["loaded_tokens_per_s"] = double(B) / t_loaded;
        j["loaded_vs_quiet"] = t_fwd / t_loaded;
        j["quiet_samples_tokens_per_s"] = rates(quiet_rates);
        j["loaded_samples_tokens_per_s"] = rates(loaded_rates);
      }
      std::cout << j.dump() << std::endl;
    }
  });

  auto* e = bench->add_subcommand("es", "Population decode throughput: pure inference vs EGGROLL vs OpenES");
  auto eo = std::make_shared<BenchEsOptions>();
  e->add_option("--backend", eo->backend, "cpu, or cuda (random weights made on the device; app/bench_cuda.cpp)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  e->add_option("--preset", eo->preset, "model size preset (random weights)");
  e->add_option("--dtype", eo->dtype, "matrix dtype: f32 or bf16 (default: f32 on the cpu, bf16 on cuda)");
  e->add_option("--population", eo->population, "comma-separated population sizes (even)");
  e->add_option("--tokens", eo->tokens, "decode steps per measurement")->check(CLI::Range(1, 100000));
  e->add_option("--openes-members", eo->openes_members, "members timed for OpenES")->check(CLI::Range(1, 1 << 20));
  e->add_option("--openes-tokens", eo->openes_tokens, "tokens per OpenES member (default: --tokens)")
      ->check(CLI::Range(1, 100000));
  e->add_option("--rank", eo->rank, "perturbation rank r")->check(CLI::Range(1, 1024));
  e->add_option("--repeat", eo->repeat, "interleaved repetitions, the variants in a rotating order; the best time of each counts")
      ->check(CLI::Range(1, 100));
  e->add_option("--sigma", eo->sigma, "noise scale")->check(CLI::Range(0.0, 10.0));
  e->add_option("--threads", eo->threads, "CPU threads (0 = all)")->check(CLI::Range(0, 4096));
  e->add_option("--interleave", eo->interleave,
                "cpu: runs (each variant decodes its tokens alone, in turn) or steps (the three variants "
                "decode side by side, one step each in turn: slow spells of a shared machine hit all three; "
                "three populations' states at once)")
      ->check(CLI::IsMember({"runs", "steps"}));
  e->add_option("--competing-load", eo->competing_load,
                "cpu: also measure inference and EGGROLL (kept) with N busy-spinning processes running")
      ->check(CLI::Range(0, 1024));
  e->callback([=] {
    auto pops = parse_int_list("--population", eo->population);
    for (auto n : pops)
      if (n < 2 || n % 2 || n > (1 << 20)) throw InputError(fmt::format("--population: {} is not an even number in [2, 2^20]", n));
    if (eo->openes_tokens == 0) eo->openes_tokens = eo->tokens;  // the same work per member as EGGROLL
    if (eo->backend == "cuda") {
      if (eo->competing_load > 0) throw InputError("--competing-load: only for --backend cpu");
      if (eo->interleave != "runs") throw InputError("--interleave steps: only for --backend cpu");
      bench_es_cuda(*eo, pops);
      return;
    }
    DType dt = DType::F32;
    if (!eo->dtype.empty() && (!parse_dtype(eo->dtype, dt) || dt == DType::F16))
      throw InputError(fmt::format("--dtype: '{}' is not one of f32, bf16", eo->dtype));
    set_num_threads(eo->threads);
    ModelConfig cfg = ModelConfig::preset(eo->preset);
    fmt::print(stderr, "bench es: building random {} model ({:.0f}M params, {} matrices)\n", eo->preset,
               double(cfg.param_count()) / 1e6, dtype_name(dt));
    Model m = Model::random(cfg, 1);
    auto sel = select_params(m, {"*"}, {"emb.weight", "head.weight"}, true);
    NoiseConfig nc;
    nc.seed = 1, nc.rank = eo->rank, nc.sigma = float(eo->sigma);
    nc.noise_reuse = 1;  // a new draw each step: the kept variant's timed step generates its factors
    const int T = eo->tokens, To = eo->openes_tokens, M = eo->openes_members;
    // Every variant decodes through the Decoder's timed greedy mode (rwkv/decoder.h: ModelStep on
    // the CPU backend, argmax on the backend, each step's argmax the next input), as training does.
    // the model's weights as training holds them: matrices in `dt`, every product prepared (fp32
    // panels, or bf16 panels that replace the plain bf16 arrays)
    CpuBackend mbe;
    BackendModel bm(mbe, m, dt);
    std::vector<std::vector<uint16_t>> base_bits(m.params.size());  // OpenES's bf16 bases
    if (dt == DType::BF16)
      for (int pid : sel.ids())
        if (m.params[size_t(pid)].is_matrix) {
          base_bits[size_t(pid)].resize(m.params[size_t(pid)].numel());
          mbe.download(base_bits[size_t(pid)].data(), bm.weights().params[size_t(pid)].data, base_bits[size_t(pid)].size() * 2);
        }
    bm.prepare_products();
    const ModelWeights& mw = bm.weights();
    // Fresh states for members 0..B-1 and the perturbation (nullptr: none); returns their first tokens.
    auto start = [&](Decoder& dec, int64_t B, Perturbation* pert) {
      dec.reset(int(B));
      dec.set_perturbation(pert ? &pert->view() : nullptr);
      std::vector<int32_t> first(static_cast<size_t>(B));
      for (int64_t i = 0; i < B; i++) first[size_t(i)] = int32_t((i * 7919) % cfg.vocab);
      return first;
    };
    // T greedy steps of members 0..B-1 from a fresh state; seconds (the perturbation's begin_step
    // for step `epoch` included)
    auto decode = [&](int64_t B, Perturbation* pert, uint64_t epoch = 1) {
      Decoder dec(mbe, mw, B);
      const std::vector<int32_t> tok0 = start(dec, B, pert);
      const double t0 = now_s();
      if (pert) pert->begin_step(epoch, int(B));
      dec.greedy_steps(tok0, T);
      return now_s() - t0;
    };
    // --interleave steps: the three variants' decoders side by side (three states), one greedy step
    // of each in turn (the order rotating with the step and the repetition), each variant's steps
    // timed and summed, its begin_step included as in decode(); seconds of (inference, kept,
    // regenerated). The kept cache is refilled as in decode(): epoch 0 untimed, epoch 1 timed.
    auto decode_side_by_side = [&](int64_t B, int rep) {
      Perturbation keep(m, sel, nc, NoiseCache::Keep), regen(m, sel, nc, NoiseCache::Regenerate);
      keep.begin_step(0, int(B));
      Decoder d0(mbe, mw, B), d1(mbe, mw, B), d2(mbe, mw, B);
      Decoder* dec[3] = {&d0, &d1, &d2};
      Perturbation* pert[3] = {nullptr, &keep, &regen};
      std::vector<int32_t> tok[3];
      double sec[3] = {0, 0, 0};
      for (int v = 0; v < 3; v++) tok[v] = start(*dec[v], B, pert[v]);
      for (int v = 1; v < 3; v++) {
        const double t0 = now_s();
        pert[v]->begin_step(1, int(B));
        sec[v] += now_s() - t0;
      }
      for (int t = 0; t < T; t++)
        for (int k = 0; k < 3; k++) {
          const int v = (k + t + rep) % 3;
          const double t0 = now_s();
          tok[v] = dec[v]->greedy_steps(tok[v], 1);
          sec[v] += now_s() - t0;
        }
      struct Times {
        double pure, keep, regen;
        size_t cache_bytes;
      };
      return Times{sec[0], sec[1], sec[2], keep.cache_bytes()};
    };
    // OpenES: each member materialises W + sigma eps of every selected matrix (Backend::perturb_full,
    // the model's matrix dtype, vectorised noise), its y = W x matrices are packed again
    // (Backend::refresh_prepared), and it decodes To tokens alone (batch 1) through the same Decoder.
    // Returns the seconds of M members: (materialisation, decode).
    auto openes = [&]() {
      CpuBackend be;
      ModelWeights pw = mw;  // the base weights; the selected matrices replaced by copies below
      const std::vector<int> ids = sel.ids();
      std::vector<std::vector<uint8_t>> copies;
      for (int pid : ids) {
        WeightView& w = pw.params[size_t(pid)];
        copies.emplace_back(size_t(w.rows * w.cols) * dtype_size(w.dtype));
        w.data = copies.back().data();
        w.prepared = nullptr;
      }
      const std::vector<ProductMatrix> wx = product_matrices(pw);
      std::vector<uint8_t> own(pw.params.size(), 0);  // prepared handles this function made
      auto materialise = [&](int member) {
        for (size_t k = 0; k < ids.size(); k++) {
          const int pid = ids[k];
          const WeightView& base = mw.params[size_t(pid)];
          const void* b = base_bits[size_t(pid)].empty() ? base.data : base_bits[size_t(pid)].data();
          be.perturb_full(noise_key(nc, uint32_t(pid), 0, uint32_t(member)), nc.dist, vector_scale(nc, uint32_t(member)),
                          b, copies[k].data(), base.dtype, base.rows * base.cols);
        }
        for (const ProductMatrix& pm : wx) {
          const int pid = pm.pid;
          WeightView& w = pw.params[size_t(pid)];
          if (w.data == mw.params[size_t(pid)].data) continue;  // not perturbed: the model's packing
          if (!own[size_t(pid)]) {
            w.prepared = be.prepare_weight(w, pm.x_times_p);
            own[size_t(pid)] = 1;
          } else {
            be.refresh_prepared(w.prepared, w);
          }
        }
      };
      materialise(0);  // warm-up (untimed): member 0, one token
      Decoder dec(be, pw, 1);  // after the first materialisation: the step copies the prepared handles
      dec.reset(1);
      dec.greedy_steps(std::vector<int32_t>{0}, 1);
      double t_mat = 0, t_dec = 0;
      for (int i = 0; i < M; i++) {
        const double t0 = now_s();
        materialise(i);
        const double t1 = now_s();
        dec.reset(1);
        dec.greedy_steps(std::vector<int32_t>{int32_t((int64_t(i) * 7919) % cfg.vocab)}, To);
        t_mat += t1 - t0;
        t_dec += now_s() - t1;
      }
      for (const ProductMatrix& pm : wx)
        if (own[size_t(pm.pid)]) be.release_prepared(pw.params[size_t(pm.pid)].prepared);
      return std::pair<double, double>(t_mat, t_dec);
    };
    fmt::print(stderr, "bench es: OpenES, {} members x {} tokens at batch 1\n", M, To);
    double t_open = 1e300, t_open_mat = 0, t_open_dec = 0;  // the best repetition and its two parts
    for (int rep = 0; rep < eo->repeat; rep++) {
      const auto [tm, td] = openes();
      if (tm + td < t_open) t_open = tm + td, t_open_mat = tm, t_open_dec = td;
    }
    for (int64_t N : pops) {
      fmt::print(stderr, "bench es: population {}\n", N);
      // interleaved repetitions, best time of each variant (the machines are shared and noisy);
      // a fresh perturbation each time, so the kept noise is generated inside every measurement
      double t_pure = 1e300, t_regen = 1e300, t_keep = 1e300, tl_pure = 1e300, tl_keep = 1e300;
      size_t cache_bytes = 0;
      for (int rep = 0; rep < eo->repeat; rep++) {
        if (eo->interleave == "steps") {
          const auto ts = decode_side_by_side(N, rep);
          t_pure = std::min(t_pure, ts.pure);
          t_keep = std::min(t_keep, ts.keep);
          t_regen = std::min(t_regen, ts.regen);
          cache_bytes = ts.cache_bytes;
        } else {
          // the three variants in a rotating order (repetition k starts with variant k mod 3), so
          // that with --repeat >= 3 none of them is always the one measured first
          for (int v = 0; v < 3; v++) {
            const int variant = (v + rep) % 3;
            if (variant == 0) {
              t_pure = std::min(t_pure, decode(N, nullptr));
            } else if (variant == 1) {
              // as in training after its first step: the cache of the step before (epoch 0, untimed)
              // is refilled in place with this step's factors (epoch 1, timed)
              Perturbation keep(m, sel, nc, NoiseCache::Keep);
              keep.begin_step(0, int(N));
              t_keep = std::min(t_keep, decode(N, &keep, 1));
              cache_bytes = keep.cache_bytes();
            } else {
              Perturbation regen(m, sel, nc, NoiseCache::Regenerate);
              t_regen = std::min(t_regen, decode(N, &regen));
            }
          }
        }
        if (eo->competing_load > 0) {
          CompetingLoad load(eo->competing_load);
          load.start();
          tl_pure = std::min(tl_pure, decode(N, nullptr));
          Perturbation keep(m, sel, nc, NoiseCache::Keep);
          keep.begin_step(0, int(N));
          tl_keep = std::min(tl_keep, decode(N, &keep, 1));
          load.stop();
        }
      }
      const double pure = double(N) * T / t_pure, rg = double(N) * T / t_regen, kp = double(N) * T / t_keep,
                   op = double(M) * To / t_open;
      nlohmann::ordered_json j = {{"bench", "es"},
                                  {"backend", "cpu"},
                                  {"preset", eo->preset},
                                  {"population", N},
                                  {"tokens", T},
                                  {"rank", eo->rank},
                                  {"dtype", dtype_name(dt)},
                                  {"kernel", dt == DType::BF16 ? bf16_kernel_name(best_bf16_kernel()) : "f32"},
                                  {"threads", num_threads()},
                                  {"parallel", parallel_backend()},
                                  {"noise_simd", noise_simd_active()},
                                  {"inference_tokens_per_s", pure},
                                  {"eggroll_regenerate_tokens_per_s", rg},
                                  {"eggroll_keep_tokens_per_s", kp},
                                  {"openes_tokens_per_s", op},
                                  {"openes_members_timed", M},
                                  {"openes_tokens", To},
                                  {"eggroll_tokens_per_member", T},
                                  {"openes_tokens_per_member", To},
                                  {"openes_materialise_s_per_member", t_open_mat / M},
                                  {"openes_decode_s_per_member", t_open_dec / M},
                                  {"noise_cache_bytes", cache_bytes},
                                  {"repeat", eo->repeat},
                                  {"interleave", eo->interleave},
                                  {"ratio_keep_vs_inference", kp / pure},
                                  {"ratio_regenerate_vs_inference", rg / pure},
                                  {"ratio_keep_vs_openes", kp / op},
                                  {"ratio_regenerate_vs_openes", rg / op}};
      if (eo->competing_load > 0) {
        j["competing_load"] = eo->competing_load;
        j["loaded_inference_tokens_per_s"] = double(N) * T / tl_pure;
        j["loaded_eggroll_keep_tokens_per_s"] = double(N) * T / tl_keep;
        j["loaded_vs_quiet_inference"] = t_pure / tl_pure;
        j["loaded_vs_quiet_keep"] = t_keep / tl_keep;
      }
      std::cout << j.dump() << std::endl;
    }
  });

  // bench noise: the cost of making factor elements (what es.noise_cache: regenerate pays every
  // token), one thread, the vectorised fill against the scalar definition in the same run.
  struct NoiseOpts {
    int64_t elements = 1 << 18;
    double seconds = 0.5;
    int repeat = 3;
  };
  auto no = std::make_shared<NoiseOpts>();
  auto* nz = bench->add_subcommand("noise", "Factor generation cost: Philox + Box-Muller per element, AVX-512 vs scalar");
  nz->add_option("--elements", no->elements, "elements per fill (one array; default 2^18, about one pair's factors over all of 0.1b's matrices)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  nz->add_option("--seconds", no->seconds, "minimum timed seconds per measurement")->check(CLI::Range(0.0, 3600.0));
  nz->add_option("--repeat", no->repeat, "interleaved repetitions; the best time of each counts")->check(CLI::Range(1, 100));
  nz->callback([=] {
    const size_t n = size_t(no->elements);
    std::vector<float> simd(n), scalar(n);
    for (NoiseDist dist : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
      NoiseKey key{};
      key.seed = 0x243f6a8885a308d3ull;
      key.param_id = 7;
      key.epoch_bucket = 1;
      uint32_t pair = 0;
      auto fill = [&](bool vec, float* out) {
        key.pair = pair++;  // a fresh array each call, as a new pair would be
        if (vec)
          fill_noise_simd(key, dist, 0, n, out);
        else
          fill_noise_scalar(key, dist, 0, n, out);
      };
      const bool has_simd = noise_simd_supported();
      double t_simd = 1e300, t_scalar = 1e300;
      for (int rep = 0; rep < no->repeat; rep++) {
        if (has_simd) t_simd = std::min(t_simd, time_per_call([&] { fill(true, simd.data()); }, no->seconds, 3));
        t_scalar = std::min(t_scalar, time_per_call([&] { fill(false, scalar.data()); }, no->seconds, 3));
      }
      nlohmann::json j = {{"bench", "noise"},
                          {"dist", noise_dist_name(dist)},
                          {"elements", no->elements},
                          {"threads", 1},
                          {"repeat", no->repeat},
                          {"scalar_ns_per_element", t_scalar / double(n) * 1e9},
                          {"simd", has_simd}};
      if (has_simd) {
        // the same key in both paths: the bits must agree (the definition, core/noise.h)
        key.pair = 12345;
        fill_noise_simd(key, dist, 0, n, simd.data());
        fill_noise_scalar(key, dist, 0, n, scalar.data());
        j["simd_ns_per_element"] = t_simd / double(n) * 1e9;
        j["simd_speedup"] = t_scalar / t_simd;
        j["same_bits"] = std::memcmp(simd.data(), scalar.data(), n * sizeof(float)) == 0;
      }
      std::cout << j.dump() << std::endl;
    }
  });
}

}  // namespace eggroll
