#include "app/plan.h"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/ops/wkv7.h"
#include "es/perturbation.h"

namespace eggroll {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr uint64_t kCudaReserve = uint64_t(1) << 30;

std::string bytes_str(uint64_t b) {
  const double x = double(b);
  if (x >= kGiB) return fmt::format("{:.2f} GiB", x / kGiB);
  if (x >= 1024.0 * 1024.0) return fmt::format("{:.1f} MiB", x / (1024.0 * 1024.0));
  if (x >= 1024.0) return fmt::format("{:.1f} KiB", x / 1024.0);
  return fmt::format("{} B", b);
}

}  // namespace

ModelConfig read_checkpoint_config(const std::string& path, DType* dtype) {
  const StateDict sd = read_checkpoint_header(path);
  const ModelConfig c = ModelConfig::infer(sd, path);  // the checks and errors of Model::load
  if (dtype) *dtype = sd.at("emb.weight", path).dtype;
  return c;
}

const PlanItem* Plan::item(const std::string& name) const {
  for (const auto& it : items)
    if (it.name == name) return &it;
  return nullptr;
}

Plan make_plan(const PlanRequest& req) {
  const ModelConfig& c = req.model;
  if (c.n_layer <= 0 || c.n_embd <= 0 || c.vocab <= 0) throw InputError("plan: empty model configuration");
  require(req.directions >= 2 && req.directions % 2 == 0, "es.directions",
          "must be even and >= 2, got " + std::to_string(req.directions));
  require(req.prompts_per_step >= 1, "es.prompts_per_step", "must be >= 1");
  require(req.gpus >= 1, "--gpus", "must be >= 1");
  require(req.rank >= 1, "es.rank", "must be >= 1");
  require(req.device_gib > 0, "--device-memory", "must be > 0");
  require(req.optim == "sgd" || req.optim == "adam" || req.optim == "adamw", "optim.name",
          "'" + req.optim + "' is not one of sgd, adam, adamw");

  Plan p;
  p.req = req;
  p.generations = req.directions * req.prompts_per_step;
  p.generations_per_device = (p.generations + req.gpus - 1) / req.gpus;
  p.pairs = (req.directions + 1) / 2;
  p.token_budget = req.prompt_tokens + req.thinking_length + req.answer_length;
  const uint64_t G = uint64_t(p.generations_per_device);
  const uint64_t L = uint64_t(c.n_layer), C = uint64_t(c.n_embd), H = uint64_t(c.n_head), V = uint64_t(c.vocab);
  const uint64_t F = uint64_t(c.ffn), r = uint64_t(req.rank);
  const uint64_t wsize = dtype_size(req.weight_dtype);

  // parameters: as Model / select_params see them
  uint64_t matrix_numel = 0, vector_numel = 0, updated_matrix_numel = 0, largest_update = 0, largest_mn = 0;
  uint64_t largest_m = 0, largest_n = 0;
  double product_params = 0;
  for (const auto& spec : c.tensor_specs(req.weight_dtype)) {
    uint64_t n = 1;
    for (auto d : spec.shape) n *= uint64_t(d);
    const bool matrix = spec.shape.size() == 2 && spec.name.find("att.r_k") == std::string::npos;
    p.params += n;
    (matrix ? matrix_numel : vector_numel) += n;
    if (matrix && spec.name != "emb.weight") product_params += double(n);
    bool inc = false, exc = false;
    for (const auto& pat : req.include) inc = inc || glob_match(pat, spec.name);
    for (const auto& pat : req.exclude) exc = exc || glob_match(pat, spec.name);
    if (!inc || exc) continue;
    if (matrix) {
      const uint64_t m = uint64_t(spec.shape[0]), nn = uint64_t(spec.shape[1]);
      p.perturbed_matrices++;
      p.updated_params += n;
      updated_matrix_numel += n;
      p.noise_floats_per_pair += (m + nn) * r;
      if (n > largest_mn) largest_mn = n, largest_m = m, largest_n = nn;
    } else if (!req.freeze_nonlora) {
      p.updated_params += n;
      p.noise_floats_per_pair += n;
    }
  }
  largest_update = largest_mn * 4 + (largest_m + largest_n) * uint64_t(p.pairs) * r * 4;
  p.forward_flops_per_token = 2.0 * product_params;
  p.wkv_bytes_per_generation = L * H * kWkvHeadState * 4;
  p.state_bytes_per_generation = p.wkv_bytes_per_generation + L * 2 * C * 4;

  auto add = [&](std::string name, uint64_t bytes, std::string detail) {
    p.items.push_back({std::move(name), bytes, std::move(detail)});
  };
  add("weights", matrix_numel * wsize + vector_numel * 4,
      fmt::format("{} matrix params x {} B + {} vector params x 4 B", matrix_numel, wsize, vector_numel));
  add("fp32 master", req.weight_dtype == DType::F32 ? 0 : updated_matrix_numel * 4,
      req.weight_dtype == DType::F32 ? "weights are fp32" : fmt::format("{} updated matrix params x 4 B", updated_matrix_numel));
  add("states", G * p.state_bytes_per_generation,
      fmt::format("{} generations x L {} x (2C + H x 64 x 64) x 4 B = {:.1f} MB per generation (WKV {:.1f} MB)", G,
                  L, double(p.state_bytes_per_generation) / 1e6, double(p.wkv_bytes_per_generation) / 1e6));
  add("noise cache", req.noise_cache_keep ? uint64_t(p.pairs) * p.noise_floats_per_pair * 4 : 0,
      req.noise_cache_keep ? fmt::format("{} pairs x {} floats (sum (m+n) r + vectors) x 4 B", p.pairs, p.noise_floats_per_pair)
                           : "es.noise_cache=regenerate");
  add("logits", G * V * 4, fmt::format("{} generations x V {} x 4 B", G, V));
  const uint64_t lora_max = uint64_t(std::max({c.dw, c.da, c.dv, c.dg, 1}));
  uint64_t act = G * (19 * C + F + lora_max) * 4;
  std::string act_detail = fmt::format("{} generations x (19 C + ffn + {}) x 4 B", G, lora_max);
  if (req.weight_dtype != DType::F32) {
    act += G * std::max(C, F) * 2;
    act_detail += " + bf16 GEMM inputs";
  }
  if (!req.freeze_nonlora) {
    act += 24 * G * C * 4;
    act_detail += " + per-member vectors";
  }
  add("activations", act, act_detail);
  const bool adam = req.optim != "sgd";
  add("optimizer state", adam ? 2 * p.updated_params * 4 : 0,
      adam ? fmt::format("{}: 2 x {} updated params x 4 B", req.optim, p.updated_params) : "sgd: none");
  add("update workspace", largest_update,
      fmt::format("largest updated matrix {} x {}: gradient + (m + n) x {} pairs x r {} operands", largest_m, largest_n,
                  p.pairs, r));
  add("tokens", G * uint64_t(p.token_budget) * 4, fmt::format("{} generations x {} tokens x 4 B", G, p.token_budget));
  add("CUDA reserve", kCudaReserve, "context, cuBLAS workspaces, allocator slack");
  for (const auto& it : p.items) p.total_bytes += it.bytes;
  p.device_bytes = uint64_t(req.device_gib * kGiB);
  p.fits = p.total_bytes <= p.device_bytes;
  return p;
}

std::string format_plan(const Plan& p) {
  const PlanRequest& q = p.req;
  std::string s;
  s += fmt::format("model: {} ({}), {} params, weights {}\n", q.model_source, q.model.describe(), p.params,
                   dtype_name(q.weight_dtype));
  s += fmt::format("population: {} directions x {} prompts = {} generations, {} per device on {} device(s); {} pairs\n",
                   q.directions, q.prompts_per_step, p.generations, p.generations_per_device, q.gpus, p.pairs);
  s += fmt::format("tokens per generation: {} prompt + {} thinking + {} answer = {}\n", q.prompt_tokens,
                   q.thinking_length, q.answer_length, p.token_budget);
  s += fmt::format("noise: rank {}, cache {}, {} perturbed matrices, {} updated params; optimizer {}\n", q.rank,
                   q.noise_cache_keep ? "keep" : "regenerate", p.perturbed_matrices, p.updated_params, q.optim);
  s += fmt::format("{:<18} {:>16} {:>12}  {}\n", "item", "bytes", "", "how");
  for (const auto& it : p.items)
    s += fmt::format("{:<18} {:>16} {:>12}  {}\n", it.name, it.bytes, bytes_str(it.bytes), it.detail);
  s += fmt::format("{:<18} {:>16} {:>12}\n", "total", p.total_bytes, bytes_str(p.total_bytes));
  s += fmt::format("{:<18} {:>16} {:>12}\n", "device", p.device_bytes, bytes_str(p.device_bytes));
  const double step_flops = p.forward_flops_per_token * double(p.generations_per_device) * double(p.token_budget);
  s += fmt::format("compute: {:.2f} GFLOP per token of forward products, {:.1f} TFLOP per device per step (full budget)\n",
                   p.forward_flops_per_token / 1e9, step_flops / 1e12);
  if (p.fits)
    s += fmt::format("fits: {} free of {}\n", bytes_str(p.device_bytes - p.total_bytes), bytes_str(p.device_bytes));
  else
    s += fmt::format("does not fit: needs {} more than the device's {} (fewer generations per device, more GPUs, "
                     "es.noise_cache=regenerate or bf16 weights)\n",
                     bytes_str(p.total_bytes - p.device_bytes), bytes_str(p.device_bytes));
  return s;
}

std::string plan_json(const Plan& p) {
  nlohmann::ordered_json j;
  j["model"] = p.req.model_source;
  j["weight_dtype"] = dtype_name(p.req.weight_dtype);
  j["params"] = p.params;
  j["updated_params"] = p.updated_params;
  j["generations"] = p.generations;
  j["generations_per_device"] = p.generations_per_device;
  j["pairs"] = p.pairs;
  j["token_budget"] = p.token_budget;
  j["state_bytes_per_generation"] = p.state_bytes_per_generation;
  j["wkv_bytes_per_generation"] = p.wkv_bytes_per_generation;
  j["forward_flops_per_token"] = p.forward_flops_per_token;
  nlohmann::ordered_json items = nlohmann::ordered_json::object();
  for (const auto& it : p.items) items[it.name] = it.bytes;
  j["items"] = items;
  j["total_bytes"] = p.total_bytes;
  j["device_bytes"] = p.device_bytes;
  j["fits"] = p.fits;
  return j.dump();
}

PlanRequest plan_request(const TrainConfig& cfg) {
  PlanRequest r;
  if (!cfg.model.path.empty()) {
    try {
      r.model = read_checkpoint_config(cfg.model.path, &r.weight_dtype);
    } catch (const InputError& e) {
      throw InputError(std::string("model.path: ") + e.what() + " (plan for a preset instead: --preset NAME)");
    }
    r.model_source = cfg.model.path;
  } else {
    r.model = ModelConfig::preset(cfg.model.init_preset, cfg.model.vocab == "byte" ? 256 : 65536);
    r.model_source = "preset " + cfg.model.init_preset;
    if (!parse_dtype(cfg.model.init_dtype, r.weight_dtype))
      throw InputError("model.init_dtype: unknown dtype '" + cfg.model.init_dtype + "'");
  }
  // the matrices' dtype on the device: model.matrix_dtype, or with "auto" the stored one
  if (cfg.model.matrix_dtype == "f32") r.weight_dtype = DType::F32;
  if (cfg.model.matrix_dtype == "bf16") r.weight_dtype = DType::BF16;
  r.directions = cfg.es.directions;
  r.prompts_per_step = cfg.es.prompts_per_step;
  r.rank = cfg.es.rank;
  r.noise_cache_keep = cfg.es.noise_cache == "keep";
  r.freeze_nonlora = cfg.es.freeze_nonlora;
  r.include = cfg.es.include;
  r.exclude = cfg.es.exclude;
  r.optim = cfg.optim.name;
  r.thinking_length = cfg.task.thinking_length;
  r.answer_length = cfg.task.answer_length;
  return r;
}

Plan require_fits(const TrainConfig& cfg, int gpus, double device_gib, const std::string& device) {
  PlanRequest req = plan_request(cfg);
  req.gpus = gpus;
  req.device_gib = device_gib;
  Plan plan = make_plan(req);
  if (!plan.fits)
    throw InputError(fmt::format("run.device: the run does not fit the free memory of {} ({:.2f} GiB):\n{}", device,
                                 device_gib, format_plan(plan)));
  return plan;
}

}  // namespace eggroll
