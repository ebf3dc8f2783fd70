// es/ops_engine.h (the trainer's population step on any backend) on the CPU backend against the
// reference functions: generation against Forward + EggrollPerturbation, the update against
// eggroll_gradient + Optimizer::step, bit for bit with fp32 weights; bf16 matrices; run.device.
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "es/ops_engine.h"
#include "es/trainer.h"
#include "fixtures.h"
#include "rwkv/generate.h"
#if EGGROLL_HAVE_CUDA
#include "cuda/cuda_ops.h"
#endif

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

Model tiny_model(uint64_t seed = 5) { return Model::random(ModelConfig::preset("tiny", 256), seed); }

std::vector<GenRequest> requests(int n) {
  std::vector<GenRequest> r;
  for (int j = 0; j < n; j++) {
    std::vector<int32_t> prompt;
    for (int t = 0; t < 1 + (j * 3) % 5; t++) prompt.push_back(int32_t((17 * j + 29 * t + 1) % 256));
    r.push_back({prompt, 1000 + uint64_t(j), j % 6});
  }
  return r;
}

NoiseConfig noise(int rank = 2) {
  NoiseConfig nc;
  nc.seed = 11, nc.rank = rank, nc.sigma = 0.05f, nc.noise_reuse = 1;
  return nc;
}

void same_results(const std::vector<GenResult>& a, const std::vector<GenResult>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t j = 0; j < a.size(); j++) {
    INFO("request " << j);
    CHECK(a[j].tokens == b[j].tokens);
    CHECK(a[j].text == b[j].text);
    CHECK(a[j].stop_reason == b[j].stop_reason);
  }
}

}  // namespace

TEST_CASE("generation through the backend ops equals the CPU forward's", "[ops_engine][generate]") {
  const Model m = tiny_model();
  auto tok = make_byte_tokenizer();
  const auto reqs = requests(7);
  for (bool sampled : {false, true}) {
    GenOptions g;
    g.max_tokens = 9;
    g.tokenizer = tok.get();
    g.stop_strings = {"\x7f"};
    if (sampled) g.sampling.temperature = 0.9f, g.sampling.top_k = 40, g.sampling.top_p = 0.9f;
    INFO((sampled ? "sampled" : "greedy"));
    Forward fwd(m);
    GenStats s_cpu, s_ops;
    const auto want = generate(fwd, reqs, g, nullptr, &s_cpu);
    CpuStepBackend be;
    const StepWeights w = host_step_weights(m);
    OpsStepper stepper(be, w, 7);
    const auto got = generate(stepper, reqs, g, &s_ops);
    same_results(want, got);
    CHECK(s_cpu.generated_tokens == s_ops.generated_tokens);
    CHECK(s_cpu.steps == s_ops.steps);
    // a second call on the same stepper starts from fresh states
    same_results(want, generate(stepper, reqs, g));
  }
}

TEST_CASE("perturbed generation through an OpsEngine equals EggrollPerturbation's", "[ops_engine][generate]") {
  Model m = tiny_model();
  const auto reqs = requests(6);
  GenOptions g;
  g.max_tokens = 6;
  g.sampling.temperature = 0.7f;
  for (bool vectors : {false, true})
    for (NoiseCache mode : {NoiseCache::Keep, NoiseCache::Regenerate}) {
      INFO("vectors perturbed " << vectors << ", keep " << (mode == NoiseCache::Keep));
      const ParamSelection sel = select_params(m, {"*"}, {}, !vectors);  // emb and head included
      EggrollPerturbation pert(m, sel, noise(), mode);
      pert.begin_step(4, 6);
      Forward fwd(m);
      const auto want = generate(fwd, reqs, g, &pert.step());
      CpuStepBackend be;
      Optimizer opt({}, m, sel);
      OpsEngineOptions o;
      o.noise_cache = mode;
      o.max_rows = 6;
      OpsEngine eng(be, m, sel, noise(), {}, opt, o);
      eng.begin_step(4, 6, 0.05f);
      same_results(want, eng.generate(reqs, g, true));
      CHECK((mode == NoiseCache::Keep) == (eng.cache_bytes() > 0));
      // unperturbed rollouts of the same engine are the plain model's
      Forward plain(m);
      same_results(generate(plain, reqs, g), eng.generate(reqs, g, false));
    }
}

TEST_CASE("the OpsEngine update equals eggroll_gradient + Optimizer::step bit for bit", "[ops_engine][update]") {
  const std::vector<float> fitness = {1.f, -0.5f, 0.25f, 2.f, -1.f, 0.f, 0.75f, -2.f};
  struct Case {
    OptimKind kind;
    double clip;
    size_t lo, hi;
  };
  for (const Case& c : {Case{OptimKind::SGD, 0, 0, 4}, Case{OptimKind::Adam, 0, 0, 4}, Case{OptimKind::AdamW, 0, 1, 3},
                        Case{OptimKind::SGD, 1e-3, 0, 4}, Case{OptimKind::Adam, 1e-3, 2, 4}})
    for (bool vectors : {false, true}) {
      INFO("optimizer " << int(c.kind) << " clip " << c.clip << " pairs [" << c.lo << ", " << c.hi << ") vectors "
                        << vectors);
      Model cpu = tiny_model(), dev = tiny_model();
      const ParamSelection sel = select_params(cpu, {"*"}, {"emb.weight"}, !vectors);
      OptimConfig oc;
      oc.kind = c.kind, oc.clip_update_norm = c.clip, oc.weight_decay = c.kind == OptimKind::SGD ? 0 : 0.1;
      Optimizer opt_cpu(oc, cpu, sel), opt_dev(oc, dev, sel);
      NoiseConfig nc = noise();
      CpuStepBackend be;
      OpsEngineOptions o;
      o.max_rows = 8;
      OpsEngine eng(be, dev, sel, nc, oc, opt_dev, o);
      for (int step = 0; step < 2; step++) {
        std::vector<std::vector<float>> grads;
        eggroll_gradient(cpu, sel, nc, uint64_t(step), fitness, grads, c.lo, c.hi);
        const StepReport want = opt_cpu.step(cpu, grads, 0.02);
        eng.begin_step(uint64_t(step), 8, nc.sigma);
        const StepReport got = eng.update(fitness, c.lo, c.hi, nullptr, 0.02);
        CHECK(got.grad_norm == Approx(want.grad_norm).epsilon(1e-12));
        CHECK(got.update_norm == Approx(want.update_norm).epsilon(1e-9));
      }
      eng.to_host(dev, opt_dev);
      for (size_t pid = 0; pid < cpu.params.size(); pid++) {
        INFO(cpu.params[pid].name);
        CHECK(cpu.params[pid].data == dev.params[pid].data);
      }
      CHECK(opt_dev.steps() == opt_cpu.steps());
      const StateDict a = opt_cpu.state(), b = opt_dev.state();
      REQUIRE(a.tensors.size() == b.tensors.size());
      for (size_t i = 0; i < a.tensors.size(); i++) CHECK(a.tensors[i].to_f32() == b.tensors[i].to_f32());
    }
}

TEST_CASE("bf16 matrices: the forward reads the rounded copy, the update goes to the fp32 master",
          "[ops_engine][bf16]") {
  Model m = tiny_model(), start = tiny_model();
  const ParamSelection sel = select_params(m, {"*"}, {"emb.weight", "head.weight"}, true);
  Optimizer opt({}, m, sel);
  CpuStepBackend be;
  OpsEngineOptions o;
  o.matrix_dtype = WeightDType::BF16;
  o.max_rows = 4;
  OpsEngine eng(be, m, sel, noise(), {}, opt, o);
  // greedy continuations of the bf16-rounded model
  Model rounded = tiny_model();
  for (auto& p : rounded.params)
    if (p.is_matrix)
      for (float& v : p.data) v = round_to_bf16(v);
  GenOptions g;
  g.max_tokens = 5;
  Forward fwd(rounded);
  const auto reqs = requests(4);
  same_results(generate(fwd, reqs, g), eng.generate(reqs, g, false));
  eng.begin_step(0, 4, 0.05f);
  const std::vector<float> fit = {1.f, -1.f, 0.5f, 0.f};
  eng.update(fit, 0, 2, nullptr, 0.5);
  eng.to_host(m, opt);
  // the masters moved by the fp32 update (not by bf16 steps)
  Model want = tiny_model();
  Optimizer opt_w({}, want, sel);
  std::vector<std::vector<float>> grads;
  eggroll_gradient(want, sel, noise(), 0, fit, grads);
  opt_w.step(want, grads, 0.5);
  for (int pid : sel.ids()) CHECK(m.params[size_t(pid)].data == want.params[size_t(pid)].data);
  bool moved = false;
  for (int pid : sel.ids()) moved |= m.params[size_t(pid)].data != start.params[size_t(pid)].data;
  CHECK(moved);
}

namespace {
TrainConfig ops_run(const std::string& name, const std::string& device, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"run.name=" + name,
                                "run.dir=" + test::temp_root("ops_engine").string(),
                                "run.device=" + device,
                                "run.steps=4",
                                "run.checkpoint_every=2",
                                "run.eval_every=2",
                                "model.init_preset=tiny",
                                "model.init_seed=3",
                                "es.directions=8",
                                "es.prompts_per_step=2",
                                "es.sigma=0.05",
                                "es.rank=2",
                                "optim.name=adam",
                                "optim.lr=0.01",
                                "task.name=digits",
                                "task.template=raw",
                                "task.answer_length=6",
                                "task.val_size=4",
                                "generation.temperature=0.8",
                                "task.stop="};
  o.insert(o.end(), extra.begin(), extra.end());
  return load_train_config("", o);
}

[[maybe_unused]] std::vector<nlohmann::json> metrics(const TrainConfig& cfg) {
  std::vector<nlohmann::json> out;
  std::istringstream in(test::slurp(fs::path(run_directory(cfg)) / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("run.device=cuda without a usable GPU is refused with the reason", "[ops_engine][trainer]") {
  TrainHooks quiet;
  quiet.progress = false;
  TrainConfig c = ops_run("cuda_refused", "cuda", {"run.steps=1"});
#if EGGROLL_HAVE_CUDA
  if (cuda::device_count() > 0) {  // a GPU machine: the run goes ahead on it
    train(c, quiet);
    const auto m = metrics(c);
    REQUIRE(m.size() == 1);
    CHECK(m[0]["device"] == "cuda");
    CHECK(std::isfinite(m[0]["reward_mean"].get<double>()));
  } else {
    CHECK_THROWS_WITH(train(c, quiet), Catch::Contains("run.device") && Catch::Contains("no CUDA device"));
  }
#else
  CHECK_THROWS_WITH(train(c, quiet), Catch::Contains("run.device") && Catch::Contains("without the CUDA backend"));
#endif
  CHECK_THROWS_WITH(load_train_config("", {"task.name=digits", "run.device=tpu"}),
                    Catch::Contains("run.device") && Catch::Contains("cuda"));
}
