// `eggroll bench es --backend cuda`: the device counterpart of the CPU benchmark in
// app/cmd_bench.cpp, on random weights made on the device (BackendModel(backend, cfg, seed, dtype)).
//
// In one run: the card's ceilings (a bf16 cuBLAS GEMM, a device-to-device copy), then for each
// population N, --tokens decode steps from a fresh state for all N members, greedy (argmax on the
// device feeds the next token; no host sync inside the timed loop), for
//   inference             no perturbation
//   eggroll regenerate    EGGROLL noise generated on the fly inside every perturbed product
//   eggroll keep          the per-step noise cache generated first (begin_step inside the timing)
// interleaved --repeat times, best time of each; and OpenES once: --openes-members members, each
// materialising W + sigma eps (full rank, every perturbed matrix) into a copy of the weights on the
// device and decoding --openes-tokens (default: --tokens) tokens at batch 1, materialisation included in the time.
//
// Derived numbers (per variant, from its best time t for N x T tokens):
//   tflops = forward GEMM FLOPs per token (2 x parameters of the products, app/plan.h) x tokens/s
//   gbps   = compulsory bytes per step / (t / T): the products' weights read once, the embedding
//            rows, the vectors, every member's state read and written (token shifts + WKV, fp32),
//            and the logits written and read back by argmax. Noise-cache reads are not counted.
#include "app/bench_cuda.h"

#include <fmt/format.h>

#include "core/error.h"

#if EGGROLL_HAVE_CUDA
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cuda/cuda_backend.h"
#include "rwkv/backend_model.h"
#include "rwkv/decoder.h"
#include "cuda/init.h"
#include "es/optim.h"
#include "es/perturbation.h"
#include "app/plan.h"
#include "rwkv/model_layout.h"
#endif

namespace eggroll {

#if !EGGROLL_HAVE_CUDA

void bench_es_cuda(const BenchEsOptions&, const std::vector<int64_t>&) {
  throw InputError(
      "bench es --backend cuda: this eggroll was built without the CUDA backend (no nvcc at configure time, or "
      "-DEGGROLL_CUDA=OFF)");
}

#else

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A device array freed on scope exit.
template <class T>
struct DevBuf {
  T* p = nullptr;
  explicit DevBuf(size_t n) : p(static_cast<T*>(cuda::malloc_bytes(std::max<size_t>(n, 1) * sizeof(T)))) {}
  ~DevBuf() { cuda::free_bytes(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

// The planner's table for the benchmark's largest population: a training run's request with
// one prompt token and --tokens answer tokens, without the items the benchmark never allocates
// (fp32 master, optimizer state, update workspace).
Plan bench_plan(const ModelConfig& cfg, const BenchEsOptions& o, DType dt, int64_t N, size_t free_bytes) {
  PlanRequest rq;
  rq.model = cfg;
  rq.model_source = "preset " + o.preset;
  rq.weight_dtype = dt;
  rq.directions = N;
  rq.prompts_per_step = 1;
  rq.gpus = 1;
  rq.rank = o.rank;
  rq.noise_cache_keep = true;
  rq.freeze_nonlora = true;
  rq.optim = "sgd";
  rq.prompt_tokens = 1;
  rq.thinking_length = 0;
  rq.answer_length = o.tokens;
  rq.device_gib = double(free_bytes) / kGiB;
  Plan p = make_plan(rq);
  p.total_bytes = 0;
  for (auto& it : p.items) {
    if (it.name == "fp32 master" || it.name == "optimizer state" || it.name == "update workspace") {
      it.bytes = 0;
      it.detail = "not held by bench es";
    }
    p.total_bytes += it.bytes;
  }
  p.fits = p.total_bytes <= p.device_bytes;
  return p;
}

std::string gib(double bytes) { return fmt::format("{:.2f} GiB", bytes / kGiB); }

}  // namespace

void bench_es_cuda(const BenchEsOptions& o, const std::vector<int64_t>& pops) {
  if (cuda::device_count() == 0)
    throw InputError("bench es --backend cuda: no CUDA device found (cudaGetDeviceCount reports none)");
  const std::string dname = o.dtype.empty() ? "bf16" : o.dtype;
  DType dt;
  if (!parse_dtype(dname, dt) || dt == DType::F16)
    throw InputError(fmt::format("--dtype: '{}' is not f32 or bf16", dname));
  const DType wd = dt == DType::BF16 ? DType::BF16 : DType::F32;
  if (o.rank > cuda::kMaxDeviceRank)
    throw InputError(fmt::format("--rank: {} is above {}, the largest rank of the device kernels", o.rank,
                                 cuda::kMaxDeviceRank));
  const ModelConfig cfg = ModelConfig::preset(o.preset);
  const Model lay = model_layout(cfg);  // names, shapes and ids; no weights on the host
  const ParamSelection sel = select_params(lay, {"*"}, {"emb.weight", "head.weight"}, true);
  NoiseConfig nc;
  nc.seed = 1, nc.rank = o.rank, nc.sigma = float(o.sigma);
  validate_noise_config(nc);
  const int T = o.tokens, V = cfg.vocab;
  const size_t wsize = dt == DType::BF16 ? 2 : 4;

  // ---- memory: the largest population (plan) and the OpenES phase (weights + perturbed copy)
  const std::string device = cuda::device_name(0);
  const size_t free_b = cuda::device_free_memory(), total_b = cuda::device_total_memory();
  fmt::print(stderr, "bench es (cuda): {} ({} total, {} free)\n", device, gib(double(total_b)), gib(double(free_b)));
  const int64_t Nmax = *std::max_element(pops.begin(), pops.end());
  const Plan plan = bench_plan(cfg, o, dt, Nmax, free_b);
  if (!plan.fits) {
    fmt::print(stderr, "{}", format_plan(plan));
    throw InputError(fmt::format(
        "bench es --backend cuda: population {} of preset {} ({} weights) needs {} but {} has {} free (plan above)",
        Nmax, o.preset, dname, gib(double(plan.total_bytes)), device, gib(double(free_b))));
  }
  uint64_t copy_bytes = 0, product_bytes = 0, vector_bytes = 0;
  for (size_t pid = 0; pid < lay.params.size(); pid++) {
    const Param& p = lay.params[pid];
    const uint64_t n = uint64_t(p.rows * p.cols);
    if (sel.lowrank[pid]) copy_bytes += n * wsize;
    if (!p.is_matrix) vector_bytes += n * 4;
    else if (int(pid) != lay.emb) product_bytes += n * wsize;
  }
  const uint64_t openes_need = plan.item("weights")->bytes + copy_bytes + plan.item("CUDA reserve")->bytes;
  if (openes_need > plan.device_bytes)
    throw InputError(fmt::format("bench es --backend cuda: OpenES needs a second copy of the perturbed matrices: {} "
                                 "in all, more than the {} free on {}",
                                 gib(double(openes_need)), gib(double(free_b)), device));

  // ---- ceilings, measured before the model takes the memory
  fmt::print(stderr, "bench es (cuda): measuring the ceilings (bf16 GEMM 8192^3, 2 GiB device copy)\n");
  const double peak_tflops = cuda::measure_gemm_bf16_tflops(8192, 20);
  const double peak_gbps = cuda::measure_copy_gbps(size_t(2) << 30, 10);
  fmt::print(stderr, "bench es (cuda): ceilings {:.0f} TFLOP/s (bf16 GEMM), {:.0f} GB/s (copy, read + write)\n",
             peak_tflops, peak_gbps);

  // ---- the model, made on the device
  double t0 = now_s();
  cuda::CudaBackend model_be;
  BackendModel dm(model_be, cfg, 1, wd);
  const double init_s = now_s() - t0;
  fmt::print(stderr, "bench es (cuda): random {} model ({:.2f}B params, {} matrices, {:.2f} GB) made on the device in {:.2f} s\n",
             o.preset, double(plan.params) / 1e9, dname, double(dm.bytes()) / 1e9, init_s);
  const double flops_tok = plan.forward_flops_per_token;

  // ---- OpenES: W + sigma eps per member, materialised on the device, batch-1 decode
  const int M = o.openes_members, To = o.openes_tokens;
  double t_open = 0;
  {
    ModelWeights pw = dm.weights();
    std::vector<std::unique_ptr<DevBuf<uint8_t>>> copies;
    const std::vector<int> ids = sel.ids();
    for (int pid : ids) {
      const WeightView& w = pw.params[size_t(pid)];
      copies.push_back(std::make_unique<DevBuf<uint8_t>>(size_t(w.rows * w.cols) * wsize));
      pw.params[size_t(pid)].data = copies.back()->p;
    }
    auto materialise = [&](int member) {
      for (size_t k = 0; k < ids.size(); k++) {
        const int pid = ids[k];
        const WeightView& base = dm.weights().params[size_t(pid)];
        cuda::perturb_full(noise_key(nc, uint32_t(pid), 0, uint32_t(member)), nc.dist, vector_scale(nc, uint32_t(member)),
                           base.data, copies[k]->p, wd == DType::BF16, base.rows * base.cols);
      }
    };
    cuda::CudaBackend be;
    ModelStep op(be, pw, 1);
    BackendState st(be, cfg, 1);
    DevBuf<int32_t> toks(static_cast<size_t>(M)), slot(1), scratch(1);
    DevBuf<float> logits(static_cast<size_t>(V));
    std::vector<int32_t> h(static_cast<size_t>(M));
    for (int i = 0; i < M; i++) h[size_t(i)] = int32_t((int64_t(i) * 7919) % V);
    cuda::copy_to_device(toks.p, h.data(), h.size() * 4);
    cuda::memset_zero(slot.p, 4);
    // warm-up (untimed): member 0 materialised, one step
    materialise(0);
    op.step(toks.p, slot.p, slot.p, 1, st.view(), logits.p);
    cuda::argmax_rows(logits.p, 1, V, scratch.p);
    cuda::synchronize();
    fmt::print(stderr, "bench es (cuda): OpenES, {} members x {} tokens at batch 1\n", M, To);
    t0 = now_s();
    for (int i = 0; i < M; i++) {
      materialise(i);
      st.reset_all();
      for (int t = 0; t < To; t++) {
        op.step(toks.p + i, slot.p, slot.p, 1, st.view(), logits.p);
        cuda::argmax_rows(logits.p, 1, V, toks.p + i);
      }
    }
    cuda::synchronize();
    t_open = now_s() - t0;
  }
  const double op_tps = double(M) * To / t_open;

  // ---- populations
  for (int64_t N : pops) {
    fmt::print(stderr, "bench es (cuda): population {}\n", N);
    cuda::CudaBackend be;
    Decoder dec(be, dm.weights(), N);  // the decoder every run uses, in its timed (no-sync) mode
    std::vector<int32_t> tok0(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; i++) tok0[size_t(i)] = int32_t((i * 7919) % V);
    // `steps` greedy decode steps of all N members from a fresh state; seconds (begin_step included)
    auto decode = [&](Perturbation* dp, int steps) {
      dec.reset(int(N));
      dec.set_perturbation(dp ? &dp->view() : nullptr);
      be.synchronize();
      const double s0 = now_s();
      if (dp) dp->begin_step(0, int(N));
      dec.greedy_steps(tok0, steps);
      return now_s() - s0;
    };
    {  // warm-up (cuBLAS heuristics, bf16 scratch): one step plain and regenerated
      decode(nullptr, 1);
      Perturbation regen(lay, sel, nc, NoiseCache::Regenerate, &be);
      decode(&regen, 1);
    }
    double t_pure = 1e300, t_regen = 1e300, t_keep = 1e300;
    size_t cache_bytes = 0;
    bool finite = true;
    for (int rep = 0; rep < o.repeat; rep++) {
      t_pure = std::min(t_pure, decode(nullptr, T));
      if (rep == 0) {  // the first and last rows of the last step's logits
        std::vector<float> row(static_cast<size_t>(V));
        for (int64_t r : {int64_t(0), N - 1}) {
          cuda::copy_to_host(row.data(), dec.logits() + r * V, size_t(V) * 4);
          for (float x : row) finite = finite && std::isfinite(x);
        }
      }
      {
        Perturbation keep(lay, sel, nc, NoiseCache::Keep, &be);
        t_keep = std::min(t_keep, decode(&keep, T));
        cache_bytes = keep.cache_bytes();
      }
      Perturbation regen(lay, sel, nc, NoiseCache::Regenerate, &be);
      t_regen = std::min(t_regen, decode(&regen, T));
      fmt::print(stderr, "bench es (cuda): population {} repeat {}: {:.1f} / {:.1f} / {:.1f} ms per step (inference / keep / regenerate)\n",
                 N, rep + 1, t_pure / T * 1e3, t_keep / T * 1e3, t_regen / T * 1e3);
    }
    const double tokens = double(N) * T;
    const double pure = tokens / t_pure, rg = tokens / t_regen, kp = tokens / t_keep;
    const double step_bytes = double(product_bytes) + double(vector_bytes) + double(N) * cfg.n_embd * double(wsize) +
                              2.0 * double(N) * double(plan.state_bytes_per_generation) + 2.0 * double(N) * V * 4.0;
    auto tflops = [&](double tps) { return flops_tok * tps / 1e12; };
    auto gbps = [&](double t) { return step_bytes / (t / T) / 1e9; };
    nlohmann::ordered_json j = {{"bench", "es"},
                                {"backend", "cuda"},
                                {"device", device},
                                {"preset", o.preset},
                                {"dtype", dname},
                                {"population", N},
                                {"tokens", T},
                                {"rank", o.rank},
                                {"repeat", o.repeat},
                                {"inference_tokens_per_s", pure},
                                {"eggroll_regenerate_tokens_per_s", rg},
                                {"eggroll_keep_tokens_per_s", kp},
                                {"openes_tokens_per_s", op_tps},
                                {"openes_members_timed", M},
                                {"openes_tokens", To},
                                {"eggroll_tokens_per_member", T},
                                {"openes_tokens_per_member", To},
                                {"noise_cache_bytes", cache_bytes},
                                {"ratio_keep_vs_inference", kp / pure},
                                {"ratio_regenerate_vs_inference", rg / pure},
                                {"ratio_keep_vs_openes", kp / op_tps},
                                {"ratio_regenerate_vs_openes", rg / op_tps},
                                {"inference_ms_per_step", t_pure / T * 1e3},
                                {"eggroll_keep_ms_per_step", t_keep / T * 1e3},
                                {"eggroll_regenerate_ms_per_step", t_regen / T * 1e3},
                                {"gemm_flops_per_token", flops_tok},
                                {"bytes_per_step", step_bytes},
                                {"tflops", tflops(pure)},
                                {"gbps", gbps(t_pure)},
                                {"eggroll_keep_tflops", tflops(kp)},
                                {"eggroll_keep_gbps", gbps(t_keep)},
                                {"eggroll_regenerate_tflops", tflops(rg)},
                                {"eggroll_regenerate_gbps", gbps(t_regen)},
                                {"peak_tflops_measured", peak_tflops},
                                {"peak_gbps_measured", peak_gbps},
                                {"fraction_peak_tflops", tflops(pure) / peak_tflops},
                                {"fraction_peak_gbps", gbps(t_pure) / peak_gbps},
                                {"eggroll_keep_fraction_peak_tflops", tflops(kp) / peak_tflops},
                                {"eggroll_keep_fraction_peak_gbps", gbps(t_keep) / peak_gbps},
                                {"model_init_s", init_s},
                                {"logits_finite", finite}};
    std::cout << j.dump() << std::endl;
  }
}

#endif  // EGGROLL_HAVE_CUDA

}  // namespace eggroll
