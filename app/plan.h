#pragma once
// Device-memory plan of a training run (`eggroll plan CONFIG.yaml [key=value ...]`): what one
// GPU holds for a model and a population, item by item, and whether it fits.
//
// Items (bytes on one device; G = generations on this device = ceil(directions x prompts / gpus)):
//   weights            matrices x dtype size + vectors x 4 (the device keeps vectors in fp32)
//   fp32 master        with non-fp32 weights: the optimizer's fp32 copy of the updated matrices
//   states             G x L x (2C + H x 64 x 64) x 4   (token shifts + WKV state, fp32)
//   noise cache        es.noise_cache=keep: pairs x (sum over perturbed matrices of (m + n) r
//                      + sum over perturbed vectors of n) x 4, pairs = ceil(directions / 2)
//   logits             G x V x 4
//   activations        G x (19 C + ffn + max LoRA width) x 4: the scratch of the device step
//                      (rwkv/step.h ModelStep); + G x max(C, ffn) x 2 for bf16 GEMM inputs with
//                      bf16 weights; + 24 G C x 4 for per-member vectors when vectors are perturbed
//   optimizer state    adam / adamw: 2 x updated parameters x 4 (sgd: none)
//   update workspace   the largest updated matrix m x n x 4 (its gradient) + (m + n) x pairs x r x 4
//                      (the operands of its update GEMM)
//   tokens             G x (prompt + thinking_length + answer_length) x 4 (rollout token buffer)
//   CUDA reserve       1 GiB for the CUDA context, cuBLAS workspaces and allocator slack
// "Updated parameters" are those es.include / es.exclude / es.freeze_nonlora select (the
// perturbed ones): low-rank matrices, and vectors unless frozen.
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "app/train_config.h"
#include "rwkv/model.h"

namespace eggroll {

struct PlanRequest {
  ModelConfig model;
  std::string model_source;  // "preset 7.2b" or the checkpoint path (for the report)
  DType weight_dtype = DType::F32;
  int64_t directions = 32, prompts_per_step = 1;
  int gpus = 1;
  int rank = 1;
  bool noise_cache_keep = true;
  bool freeze_nonlora = true;
  std::string optim = "sgd";  // sgd | adam | adamw
  std::vector<std::string> include = {"*"}, exclude = {"emb.weight", "head.weight"};
  int64_t prompt_tokens = 256, thinking_length = 0, answer_length = 32;
  double device_gib = 139.0;  // device memory in GiB (2^30 bytes)
};

struct PlanItem {
  std::string name;
  uint64_t bytes = 0;
  std::string detail;  // how it was computed
};

struct Plan {
  PlanRequest req;
  int64_t generations = 0;             // directions x prompts (all devices)
  int64_t generations_per_device = 0;  // ceil(generations / gpus)
  int64_t pairs = 0;                   // ceil(directions / 2)
  int64_t token_budget = 0;            // prompt + thinking + answer
  uint64_t params = 0;                 // every parameter
  uint64_t updated_params = 0;         // perturbed / updated (matrices + unfrozen vectors)
  uint64_t perturbed_matrices = 0;     // count
  uint64_t noise_floats_per_pair = 0;  // sum (m + n) r + sum n
  uint64_t wkv_bytes_per_generation = 0;    // L x H x 64 x 64 x 4
  uint64_t state_bytes_per_generation = 0;  // + L x 2C x 4
  double forward_flops_per_token = 0;       // 2 x (parameters of the products, head included)
  std::vector<PlanItem> items;
  uint64_t total_bytes = 0;
  uint64_t device_bytes = 0;
  bool fits = false;

  const PlanItem* item(const std::string& name) const;
};

Plan make_plan(const PlanRequest& req);
// The table (one item per line, totals, verdict).
std::string format_plan(const Plan& plan);
std::string plan_json(const Plan& plan);

// The model configuration and storage dtype of a checkpoint from its header alone (the pickle of
// a .pth, the JSON header of a .safetensors): no tensor data is read. InputError on bad files.
ModelConfig read_checkpoint_config(const std::string& path, DType* dtype = nullptr);

// A request from a training config: model from model.path's header (or model.init_preset with
// V = 256 for the byte vocabulary, 65536 otherwise, dtype model.init_dtype), es.*, optim.name,
// task.thinking_length / answer_length.
PlanRequest plan_request(const TrainConfig& cfg);

// The check a run.device=cuda training run makes before allocating anything: the plan of `cfg`
// over `gpus` devices with `device_gib` GiB each; InputError ("run.device: ... does not fit the
// free memory of <device>" + the table) when it does not fit. Returns the plan.
Plan require_fits(const TrainConfig& cfg, int gpus, double device_gib, const std::string& device);

}  // namespace eggroll
