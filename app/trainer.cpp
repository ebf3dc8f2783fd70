#include "app/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/hash.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/gemm_bf16.h"
#include "core/parallel.h"
#include "es/fitness.h"
#include "es/population_engine.h"
#include "app/commands.h"
#include "app/plan.h"
#include "tasks/tasks.h"
#include "rwkv/decoder.h"
#include "rwkv/model.h"
#include "rwkv/tokenizer.h"

#if EGGROLL_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace fs = std::filesystem;

namespace eggroll {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Keeps only the lines of a JSONL log whose "step" is below `step` (a resumed run rewrites
// the steps after its checkpoint).
void truncate_log(const fs::path& p, int step) {
  if (!fs::exists(p)) return;
  std::istringstream in(read_file(p.string()));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step") || !j["step"].is_number_integer()) continue;  // torn last line
    if (j["step"].get<int>() < step) kept += line + "\n";
  }
  write_file_atomic(p.string(), kept);
}

std::string json_line(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void append_line(const fs::path& p, const std::string& line) {
  std::ofstream f(p, std::ios::app | std::ios::binary);
  f << line;
  f.flush();
}

std::unique_ptr<Tokenizer> make_tokenizer(const TrainConfig& cfg) {
  return cfg.model.vocab == "byte" ? make_byte_tokenizer() : load_world_tokenizer(cfg.model.vocab);
}

// The configured preset's shapes (model.path empty): the vocabulary from the tokenizer.
ModelConfig preset_config(const TrainConfig& cfg, const Tokenizer& tok) {
  return ModelConfig::preset(cfg.model.init_preset, tok.vocab_size() <= 256 ? 256 : 65536);
}

Model initial_model(const TrainConfig& cfg, const Tokenizer& tok, Model::MatrixBits bits = Model::MatrixBits::Widen,
                    bool show = true) {
  if (!cfg.model.path.empty()) return load_model(cfg.model.path, bits, show);
  ModelConfig mc = preset_config(cfg, tok);
  Model m = Model::random(mc, cfg.model.init_seed);
  DType dt{};
  parse_dtype(cfg.model.init_dtype, dt);
  if (dt != DType::F32)  // round the random weights to the stored precision
    for (auto& p : m.params) {
      std::vector<uint8_t> tmp(p.data.size() * 2);
      convert_from_f32(dt, p.data.data(), tmp.data(), p.data.size());
      convert_to_f32(dt, tmp.data(), p.data.data(), p.data.size());
    }
  return m;
}

}  // namespace

TaskOptions task_options(const TrainConfig& cfg) {
  TaskOptions o;
  o.name = cfg.task.name;
  o.train_path = cfg.task.train_path;
  o.val_path = cfg.task.val_path;
  o.seed = cfg.task.seed;
  o.val_size = size_t(cfg.task.val_size);
  o.template_name = cfg.task.template_;
  o.answer_tag = cfg.task.answer_tag;
  o.format_reward = cfg.task.format_reward;
  o.answer_prefix = cfg.task.answer_prefix;
  o.command = cfg.task.command;
  o.timeout_s = cfg.task.timeout_s;
  return o;
}

namespace {

GenOptions gen_options(const TrainConfig& cfg, const Tokenizer* tok, bool greedy) {
  GenOptions g;
  g.max_tokens = cfg.task.thinking_length + cfg.task.answer_length;
  g.sampling.temperature = greedy ? 0.f : float(cfg.generation.temperature);
  g.sampling.top_k = cfg.generation.top_k;
  g.sampling.top_p = float(cfg.generation.top_p);
  g.tokenizer = tok;
  if (!cfg.task.stop.empty()) g.stop_strings = {cfg.task.stop};
  return g;
}

std::vector<int32_t> prompt_tokens(const Tokenizer& tok, const Example& ex, const Model& m) {
  auto ids = tok.encode(ex.prompt);
  if (ids.empty()) ids.push_back(0);  // an empty prompt starts after the end-of-document token
  for (int32_t t : ids)
    if (t >= m.cfg.vocab)
      throw InputError(fmt::format("model.vocab: token id {} is outside the model's vocabulary of {}", t, m.cfg.vocab));
  return ids;
}

std::string fmt_eta(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const int t = int(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02d}:{:02d}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{:02d}:{:02d}", t / 60, t % 60);
}

// Greedy rollouts of the current (unperturbed) weights.
using Rollout = std::function<std::vector<GenResult>(std::span<const GenRequest>, const GenOptions&)>;

double validation_score(const Model& m, const Rollout& rollout, const Task& task, const Tokenizer& tok,
                        const TrainConfig& cfg) {
  const size_t n = task.val_size();
  if (n == 0) return std::nan("");
  std::vector<Example> ex;
  std::vector<GenRequest> reqs;
  for (size_t i = 0; i < n; i++) {
    ex.push_back(task.val_example(i));
    reqs.push_back({prompt_tokens(tok, ex.back(), m), 0, 0});
  }
  auto res = rollout(reqs, gen_options(cfg, &tok, true));
  std::vector<Completion> batch;
  for (size_t i = 0; i < n; i++) batch.push_back({&ex[i], res[i].text, res[i].tokens});
  const std::vector<double> rs = task.rewards(batch);
  double total = 0;
  for (double r : rs) total += std::isfinite(r) ? r : 0.0;
  return total / double(n);
}

// Teacher-forced tasks (sft): prompt and reference tokens of an example.
ScoreRequest score_request(const Tokenizer& tok, const Task& task, const Example& ex, const Model& m, int member) {
  ScoreRequest r{prompt_tokens(tok, ex, m), tok.encode(task.reference(ex)), member};
  for (int32_t t : r.target)
    if (t >= m.cfg.vocab)
      throw InputError(fmt::format("model.vocab: token id {} is outside the model's vocabulary of {}", t, m.cfg.vocab));
  return r;
}

// sft validation: the mean per-token log-likelihood of the validation targets, current weights.
double validation_loglik(const Model& m, PopulationEngine& engine, const Task& task, const Tokenizer& tok, int chunk_tokens) {
  const size_t n = task.val_size();
  if (n == 0) return std::nan("");
  std::vector<ScoreRequest> reqs;
  for (size_t i = 0; i < n; i++) reqs.push_back(score_request(tok, task, task.val_example(i), m, 0));
  double lp = 0, toks = 0;
  for (const ScoreResult& r : engine.score(reqs, false, nullptr, chunk_tokens)) lp += r.logprob, toks += double(r.tokens);
  return toks > 0 ? lp / toks : std::nan("");
}

// The backend of run.device. CUDA, for training (plan_world = the number of processes): refuses
// a run whose memory plan does not fit the device, before allocating anything (the plan table in
// the message); plan_world = 0: no plan check (evaluation).
std::unique_ptr<Backend> make_backend(const TrainConfig& cfg, int plan_world) {
  if (cfg.run.device == "cpu") return std::make_unique<CpuBackend>();
#if EGGROLL_HAVE_CUDA
  if (cuda::device_count() == 0)
    throw InputError("run.device: 'cuda' but no CUDA device is visible (no GPU or no driver); use run.device=cpu");
  if (cfg.es.rank > cuda::kMaxDeviceRank)
    throw InputError(fmt::format("es.rank: {} is above {}, the largest rank the CUDA kernels take", cfg.es.rank,
                                 cuda::kMaxDeviceRank));
  // one GPU per process of a node (the NCCL communicator picks the same one)
  const int device = detect_launch().local_rank % cuda::device_count();
  cuda::set_device(device);
  if (plan_world > 0)
    require_fits(cfg, plan_world, double(cuda::device_free_memory()) / double(1ull << 30),
                 fmt::format("GPU {} ({})", device, cuda::device_name(device)));
  return std::make_unique<cuda::CudaBackend>();
#else
  (void)plan_world;
  throw InputError("run.device: 'cuda' but this eggroll was built without the CUDA backend (no nvcc at configure time)");
#endif
}

// The engine's matrices: model.matrix_dtype, "auto" resolved (resolve_matrix_dtype).
DType engine_matrix_dtype(const TrainConfig& cfg) {
  return resolve_matrix_dtype(cfg).model.matrix_dtype == "bf16" ? DType::BF16 : DType::F32;
}

// all_gather of host bytes; a "nccl" communicator takes device buffers, staged through `be`.
void all_gather_host(Communicator& comm, Backend* be, const void* send, size_t bytes, void* recv) {
  if (comm.backend() != "nccl" || comm.size() == 1) {
    comm.all_gather(send, bytes, recv);
    return;
  }
  if (!be) throw std::logic_error("all_gather_host: a nccl communicator without a device backend");
  void* d = be->alloc(bytes * size_t(comm.size() + 1));
  try {
    auto* dr = static_cast<uint8_t*>(d) + bytes;
    be->upload(d, send, bytes);
    be->synchronize();
    comm.all_gather(d, bytes, dr);
    be->download(recv, dr, bytes * size_t(comm.size()));
  } catch (...) {
    be->release(d);
    throw;
  }
  be->release(d);
}

// A checkpoint: the weights, the engine's optimizer state and the run state.
void save_checkpoint_dir(const fs::path& run, int step, const Model& m, const PopulationEngine& engine, int keep) {
  const fs::path dir = run / "checkpoints";
  fs::create_directories(dir);
  const std::string name = fmt::format("step_{}", step);
  const fs::path tmp = dir / (".tmp_" + name), final = dir / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  m.save((tmp / "model.safetensors").string(), DType::F32);  // one tensor at a time
  save_safetensors((tmp / "optimizer.safetensors").string(), engine.optimizer_state());
  write_run_state(tmp.string(), {step, engine.optimizer_steps()});
  fs::remove_all(final);
  fs::rename(tmp, final);
  set_latest_checkpoint(run.string(), name);
  // keep the newest `keep`
  std::vector<std::pair<int, fs::path>> all;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step_", 0) == 0) all.push_back({std::atoi(n.c_str() + 5), e.path()});
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + size_t(keep) < all.size(); i++) fs::remove_all(all[i].second);
}

}  // namespace

TrainResult train(const TrainConfig& given, const TrainHooks& hooks) {
  const TrainConfig cfg = resolve_matrix_dtype(given);  // config.yaml records what "auto" meant here
  if (cfg.run.threads > 0) set_num_threads(cfg.run.threads);  // core/parallel.h
  CommOptions co;
  co.backend = cfg.dist.backend;
  co.rendezvous = cfg.dist.rendezvous;
  co.rendezvous_path = cfg.dist.rendezvous_path;
  co.timeout_s = cfg.dist.timeout_s;
  auto comm = make_communicator(co);
  if (comm->backend() == "nccl" && cfg.run.device != "cuda")
    throw InputError(fmt::format("dist.backend: 'nccl' carries GPU buffers and run.device is '{}'; use 'mpi', 'tcp' or "
                                 "run.device=cuda", cfg.run.device));
  const int rank = comm->rank(), world = comm->size();
  const bool lead = rank == 0;
  const bool replicated = cfg.dist.update_mode == "replicated";

  const fs::path run = run_directory(cfg);
  if (lead) fs::create_directories(run);
  comm->barrier();
  const fs::path cfg_path = run / "config.yaml";
  if (fs::exists(cfg_path)) {
    TrainConfig saved = load_train_config(cfg_path.string());
    require_resumable(saved, cfg_path.string(), cfg);
  }
  comm->barrier();  // every rank has checked the saved config before rank 0 replaces it
  if (lead) write_file_atomic(cfg_path.string(), to_yaml(cfg));

  // the device and its memory plan first: a run that cannot fit stops before any weights exist
  std::unique_ptr<Backend> backend = make_backend(cfg, world);
  auto tok = make_tokenizer(cfg);
  auto task = make_task(task_options(cfg));
  // resuming: the checkpoint's weights alone (the configured model's shapes come from its header
  // or preset, so the initial weights are never loaded beside them)
  const std::string ck = latest_checkpoint(run.string());
  Model model = ck.empty() ? initial_model(cfg, *tok, Model::MatrixBits::Widen, lead && hooks.progress)
                           : load_model((fs::path(ck) / "model.safetensors").string(), Model::MatrixBits::Widen,
                                        lead && hooks.progress);
  if (!ck.empty()) {
    const ModelConfig want =
        cfg.model.path.empty() ? preset_config(cfg, *tok) : read_checkpoint_config(cfg.model.path);
    if (model.cfg.describe() != want.describe())
      throw InputError(fmt::format("{}: checkpoint model ({}) differs from the configured one ({})", ck,
                                   model.cfg.describe(), want.describe()));
  }
  auto sel = select_params(model, cfg.es.include, cfg.es.exclude, cfg.es.freeze_nonlora);
  OptimConfig oc;
  oc.kind = parse_optim(cfg.optim.name);
  oc.beta1 = cfg.optim.beta1, oc.beta2 = cfg.optim.beta2, oc.eps = cfg.optim.eps;
  oc.weight_decay = cfg.optim.weight_decay, oc.clip_update_norm = cfg.optim.clip_update_norm;

  int start = 0;
  uint64_t optimizer_steps = 0;  // of the checkpoint resumed from
  if (!ck.empty()) {
    const RunState st = read_run_state(ck);
    optimizer_steps = st.optimizer_steps;
    start = st.step;
    if (lead) fmt::print(stderr, "resuming {} from {} (step {})\n", run.string(), ck, start);
  }
  const fs::path samples_path = run / (world == 1 || lead ? std::string("samples.jsonl")
                                                            : fmt::format("samples.rank{}.jsonl", rank));
  if (lead) truncate_log(run / "metrics.jsonl", start);
  truncate_log(samples_path, start);

  NoiseConfig nc;
  nc.seed = cfg.run.seed;
  nc.rank = cfg.es.rank;
  nc.noise_reuse = cfg.es.noise_reuse;
  nc.dist = parse_noise_dist(cfg.es.noise, "es.noise");
  nc.sigma = float(cfg.es.sigma);
  const auto shaping = parse_fitness_shaping(cfg.es.shaping, "es.shaping");
  const auto lr_sched = parse_schedule(cfg.optim.lr_schedule, "optim.lr_schedule");
  const auto sg_sched = parse_schedule(cfg.optim.sigma_schedule, "optim.sigma_schedule");
  const int G = cfg.es.directions, P = cfg.es.prompts_per_step;
  const size_t n_gen = size_t(G) * size_t(P);
  // this rank's generations [lo, hi) and antithetic pairs [pair_lo, pair_hi)
  const size_t lo = n_gen * size_t(rank) / size_t(world), hi = n_gen * size_t(rank + 1) / size_t(world);
  const size_t slice_max = (n_gen + size_t(world) - 1) / size_t(world);
  const size_t pairs = size_t(G / 2);
  const size_t pair_lo = replicated ? 0 : pairs * size_t(rank) / size_t(world);
  const size_t pair_hi = replicated ? pairs : pairs * size_t(rank + 1) / size_t(world);
  // weights, noise, states and optimizer state on the run.device backend; `model` is brought up
  // to date (engine->to_host) only for checkpoints, which read the optimizer state from the engine
  PopulationEngineOptions eo;
  eo.matrix_dtype = engine_matrix_dtype(cfg);
  eo.noise_cache = cfg.es.noise_cache == "keep" ? NoiseCache::Keep : NoiseCache::Regenerate;
  eo.max_rows = int64_t(std::max(slice_max, task->val_size()));
  auto engine = std::make_unique<PopulationEngine>(*backend, model, sel, nc, oc, eo);
  if (!ck.empty())
    engine->load_optimizer_state(load_safetensors((fs::path(ck) / "optimizer.safetensors").string()), optimizer_steps,
                                 ck);
  if (lead && hooks.progress)
    fmt::print(stderr, "{}: {} matrices on {}{}\n", run.filename().string(), cfg.model.matrix_dtype, cfg.run.device,
               eo.matrix_dtype == DType::BF16 && cfg.run.device == "cpu"
                   ? fmt::format(" ({} kernel, fp32 masters)", bf16_kernel_name(best_bf16_kernel()))
                   : "");
  const Rollout val_rollout = [&](std::span<const GenRequest> r, const GenOptions& g) {
    return engine->generate(r, g, false);
  };
  const GenOptions gopt = gen_options(cfg, tok.get(), false);
  const bool tty = lead && hooks.progress && ::isatty(2);
  TrainResult result;
  result.run_dir = run.string();
  const double t_begin = now_s();
  int done_here = 0;

  for (int step = start; step < cfg.run.steps; step++) {
    const double t0 = now_s();
    const uint64_t bytes0 = comm->bytes_sent();
    const double sigma = schedule_value(sg_sched, cfg.es.sigma, cfg.optim.sigma_decay, step, cfg.run.steps);
    const double lr = schedule_value(lr_sched, cfg.optim.lr, cfg.optim.lr_decay, step, cfg.run.steps);
    nc.sigma = float(sigma);
    engine->begin_step(uint64_t(step), G, float(sigma));
    const double t_noise = now_s();

    std::vector<Example> ex;
    std::vector<std::vector<int32_t>> ptoks;
    for (int p = 0; p < P; p++) {
      ex.push_back(task->train_example(uint64_t(step) * uint64_t(P) + uint64_t(p)));
      ptoks.push_back(prompt_tokens(*tok, ex.back(), model));
    }
    // generation j: prompt j / G, direction j % G; the sampling stream depends on (seed, step, j) only
    std::vector<GenRequest> reqs;
    for (size_t j = lo; j < hi; j++)
      reqs.push_back({ptoks[j / size_t(G)], splitmix64(cfg.run.seed ^ splitmix64(uint64_t(step) << 32 | uint64_t(j))),
                      int(j % size_t(G))});
    GenStats gs;
    std::vector<GenResult> res;
    std::vector<double> mine(slice_max + 3, std::nan(""));
    if (task->teacher_forced()) {
      // sft: fitness = mean per-token log-likelihood of the reference, teacher-forced
      std::vector<ScoreRequest> sreqs;
      for (size_t j = lo; j < hi; j++) sreqs.push_back(score_request(*tok, *task, ex[j / size_t(G)], model, int(j % size_t(G))));
      const auto sres = engine->score(sreqs, true, &gs, cfg.task.chunk_tokens);
      for (size_t j = lo; j < hi; j++) {
        const ScoreResult& r = sres[j - lo];
        mine[j - lo] = r.tokens > 0 ? r.logprob / double(r.tokens) : 0.0;
        res.push_back({sreqs[j - lo].target, task->reference(ex[j / size_t(G)]), "target"});
      }
    } else {
      res = engine->generate(reqs, gopt, true, &gs);
    }
    const double t_gen = now_s();

    // rewards of this rank's slice, then everyone's (padded to equal slices)
    if (!task->teacher_forced()) {
      std::vector<Completion> batch;
      for (size_t j = lo; j < hi; j++) batch.push_back({&ex[j / size_t(G)], res[j - lo].text, res[j - lo].tokens});
      const std::vector<double> rs = task->rewards(batch);
      std::copy(rs.begin(), rs.end(), mine.begin());
    }
    mine[slice_max] = double(gs.generated_tokens), mine[slice_max + 1] = double(gs.prompt_tokens);
    mine[slice_max + 2] = gs.seconds;
    std::vector<double> all(mine.size() * size_t(world));
    all_gather_host(*comm, backend.get(), mine.data(), mine.size() * sizeof(double), all.data());
    std::vector<double> rewards(n_gen);
    double gen_tokens = 0, prompt_toks = 0, gen_seconds = 0;
    for (int q = 0; q < world; q++) {
      const size_t qlo = n_gen * size_t(q) / size_t(world), qhi = n_gen * size_t(q + 1) / size_t(world);
      const double* row = all.data() + size_t(q) * mine.size();
      for (size_t j = qlo; j < qhi; j++) rewards[j] = row[j - qlo];
      gen_tokens += row[slice_max], prompt_toks += row[slice_max + 1];
      gen_seconds = std::max(gen_seconds, row[slice_max + 2]);
    }
    auto fit = shape_fitness(std::span<const double>(rewards), size_t(G), shaping);
    if (fit.nonfinite > 0 && lead)
      fmt::print(stderr, "step {}: {} non-finite rewards counted as the worst score\n", step, fit.nonfinite);
    const double t_score = now_s();

    const StepReport rep = engine->update(fit.fitness, pair_lo, pair_hi, replicated ? nullptr : comm.get(), lr);
    const double t_update = now_s();

    nlohmann::json mj = {{"step", step},
                         {"reward_mean", fit.mean},
                         {"reward_std", fit.std},
                         {"reward_min", fit.min},
                         {"reward_max", fit.max},
                         {"nonfinite_rewards", fit.nonfinite},
                         {"generations", n_gen},
                         {"tokens_generated", uint64_t(gen_tokens)},
                         {"prompt_tokens", uint64_t(prompt_toks)},
                         {"tokens_per_s", gen_seconds > 0 ? gen_tokens / gen_seconds : 0.0},
                         {"seconds", {{"noise", t_noise - t0}, {"generate", t_gen - t_noise}, {"score", t_score - t_gen},
                                      {"update", t_update - t_score}}},
                         {"grad_norm", rep.grad_norm},
                         {"update_norm", rep.update_norm},
                         {"lr", lr},
                         {"sigma", sigma},
                         {"noise_cache_bytes", engine->cache_bytes()},
                         {"device", cfg.run.device},
                         {"ranks", world},
                         {"bytes_sent", comm->bytes_sent() - bytes0}};
    if (lead) {
      if (cfg.run.eval_every > 0 && (step + 1) % cfg.run.eval_every == 0)
        mj["val_score"] = task->teacher_forced() ? validation_loglik(model, *engine, *task, *tok, cfg.task.chunk_tokens)
                                                 : validation_score(model, val_rollout, *task, *tok, cfg);
      append_line(run / "metrics.jsonl", json_line(mj));
    }
    std::string samples;
    for (size_t j = lo; j < std::min(hi, lo + size_t(cfg.run.samples_per_step)); j++) {
      nlohmann::json row = {{"step", step},
                            {"generation", j},
                            {"member", j % size_t(G)},
                            {"rank", rank},
                            {"prompt", ex[j / size_t(G)].prompt},
                            {"completion", res[j - lo].text},
                            {"tokens", res[j - lo].tokens},
                            {"reward", rewards[j]}};
      // the example's data fields, so that `eggroll score --in samples.jsonl` rescores the row
      // (an external task's "prompt" is its data prompt, before the template)
      for (const auto& [k, v] : ex[j / size_t(G)].record.items())
        if (!row.contains(k) || k == "prompt") row[k] = v;
      samples += json_line(row);
    }
    if (!samples.empty()) append_line(samples_path, samples);

    const bool last = step + 1 == cfg.run.steps;
    if (lead && (last || (cfg.run.checkpoint_every > 0 && (step + 1) % cfg.run.checkpoint_every == 0))) {
      engine->to_host(model);
      save_checkpoint_dir(run, step + 1, model, *engine, cfg.run.keep_checkpoints);
    }
    done_here++;
    result.steps_done = step + 1;
    result.last_reward_mean = fit.mean;
    if (tty && (last || (step + 1) % cfg.run.log_every == 0)) {
      const double per = (now_s() - t_begin) / done_here;
      fmt::print(stderr, "\r\033[Kstep {}/{}  reward {:.4f} (max {:.4f})  {:.0f} tok/s  ETA {}", step + 1,
                 cfg.run.steps, fit.mean, fit.max, mj["tokens_per_s"].get<double>(),
                 fmt_eta(per * (cfg.run.steps - step - 1)));
      if (last) fmt::print(stderr, "\n");
    }
    if (hooks.stop_after_steps >= 0 && done_here >= hooks.stop_after_steps) break;
  }
  comm->barrier();  // the last checkpoint is complete before any rank reports success
  return result;
}

EvalResult evaluate(const TrainConfig& cfg, const std::string& checkpoint) {
  auto tok = make_tokenizer(cfg);
  auto task = make_task(task_options(cfg));
  EvalResult r;
  std::string weights;
  std::string ck = checkpoint.empty() ? latest_checkpoint(run_directory(cfg)) : checkpoint;
  if (!ck.empty()) weights = fs::is_directory(ck) ? (fs::path(ck) / "model.safetensors").string() : ck;
  // bf16 matrices: a 16-bit checkpoint's matrices stay as their bits (nothing is updated here)
  const DType matrix_dtype = engine_matrix_dtype(cfg);
  const auto bits = matrix_dtype == DType::BF16 ? Model::MatrixBits::Keep : Model::MatrixBits::Widen;
  Model m = weights.empty() ? initial_model(cfg, *tok, bits) : load_model(weights, bits);
  r.checkpoint = weights.empty() ? "initial model" : weights;
  r.examples = task->val_size();
  if (r.examples == 0) throw InputError("task.val_size: the task has no validation split (set task.val_path or task.val_size)");
  // the model's greedy rollouts on run.device (an engine that perturbs and updates nothing)
  auto backend = make_backend(cfg, 0);
  ParamSelection none;
  none.lowrank.assign(m.params.size(), 0);
  none.full.assign(m.params.size(), 0);
  PopulationEngineOptions eo;
  eo.matrix_dtype = matrix_dtype;
  eo.max_rows = int64_t(r.examples);
  PopulationEngine engine(*backend, m, none, NoiseConfig{}, {}, eo);
  for (Param& p : m.params) std::vector<uint8_t>().swap(p.bits);  // placed: the engine reads only m.cfg now
  r.score = task->teacher_forced()
                ? validation_loglik(m, engine, *task, *tok, cfg.task.chunk_tokens)
                : validation_score(
                      m, [&](std::span<const GenRequest> q, const GenOptions& g) { return engine.generate(q, g, false); },
                      *task, *tok, cfg);
  return r;
}

}  // namespace eggroll
