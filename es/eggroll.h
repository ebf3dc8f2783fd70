#pragma once
// EGGROLL: the low-rank population perturbation of a model, and the ES update that it gives.
//
// Member i perturbs each selected matrix W (stored [m, n]) by E_i = s_i sigma A_i B_i^T / sqrt(r)
// (factors from es/noise.h) and, unless vectors are frozen, each selected vector by s_i sigma eps_i.
// The forward never forms E_i: after the shared GEMM it adds (x B_i)(s_i sigma / sqrt(r)) A_i^T
// per row (or the transposed form for x @ P products), O(r (m + n)) per token.
// The update g = (1/sqrt(N)) sum_i f_i E_i of a matrix is one GEMM: A_all B_all^T with the
// columns of every pair's A scaled by (f_2k - f_2k+1) sigma / sqrt(r N).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "es/noise.h"
#include "es/ops_perturbation.h"
#include "rwkv/forward.h"
#include "rwkv/model.h"

namespace eggroll {

// Which parameters get low-rank (matrices) or full-rank (vectors) noise.
struct ParamSelection {
  std::vector<uint8_t> lowrank;  // per parameter id
  std::vector<uint8_t> full;     // per parameter id (vectors; empty set when freeze_nonlora)
  size_t count() const;
  std::vector<int> ids() const;  // every perturbed parameter id, in order
};

// Glob patterns (`*`, `?`) over parameter names: a parameter is perturbed when it matches an
// include pattern and no exclude pattern; vectors only when !freeze_nonlora. InputError
// ("<where>: ...") for a pattern that matches nothing.
ParamSelection select_params(const Model& m, const std::vector<std::string>& include,
                             const std::vector<std::string>& exclude, bool freeze_nonlora,
                             const std::string& where = "es.include/es.exclude");
bool glob_match(const std::string& pattern, const std::string& name);

enum class NoiseCache { Regenerate, Keep };

// The perturbation of a population step: the selection, the noise spec and, with
// NoiseCache::Keep, every selected parameter's factors for the step's pairs (es/step_ops.h
// OpsPerturbation), in host memory for Forward::step, or in `backend`'s memory (e.g. the
// CUDA backend's, for its ModelStep; the backend must outlive this object). m gives only the
// parameters' shapes (its data may be empty, as in rwkv/model_layout.h's layouts).
class EggrollPerturbation {
 public:
  EggrollPerturbation(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg, NoiseCache cache,
                      Backend* backend = nullptr);
  ~EggrollPerturbation();
  EggrollPerturbation(const EggrollPerturbation&) = delete;
  EggrollPerturbation& operator=(const EggrollPerturbation&) = delete;
  // Prepares step `epoch` for `directions` members (Keep mode: generates the cache, unless it
  // already holds this epoch bucket's factors, as with noise_reuse 0 or k > 1).
  void begin_step(uint64_t epoch, int directions);
  void set_sigma(float sigma);
  const NoiseConfig& config() const { return cfg_; }
  size_t cache_bytes() const;  // bytes held by the per-step noise cache
  const StepPerturbation& step() const;

 private:
  NoiseConfig cfg_;
  CpuBackend host_;
  std::unique_ptr<OpsPerturbation> p_;
};

// g = (1/sqrt(N)) sum_i f_i E_i for every selected parameter (N = fitness.size(), even),
// written into grads[pid] (resized; untouched for unselected ids). Matrices by one GEMM each.
// With a pair range, only the antithetic pairs [pair_begin, pair_end) contribute (the partial
// update one rank forms from its own members; the partial updates of all ranks sum to g).
void eggroll_gradient(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg, uint64_t epoch,
                      std::span<const float> fitness, std::vector<std::vector<float>>& grads,
                      size_t pair_begin = 0, size_t pair_end = SIZE_MAX);

// ---- optimizers -----------------------------------------------------------------------
enum class OptimKind { SGD, Adam, AdamW };
OptimKind parse_optim(const std::string& name, const std::string& where = "optim.name");

struct OptimConfig {
  OptimKind kind = OptimKind::SGD;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double clip_update_norm = 0.0;  // clip g to this global L2 norm (0 = off)
};

struct StepReport {
  double grad_norm = 0;    // ||g|| before clipping
  double update_norm = 0;  // ||delta W|| applied
};

// Ascent on g: SGD W += lr g; Adam/AdamW with bias correction (AdamW: decoupled weight decay).
class Optimizer {
 public:
  Optimizer(const OptimConfig& cfg, const Model& m, const ParamSelection& sel);
  StepReport step(Model& m, std::vector<std::vector<float>>& grads, double lr);
  uint64_t steps() const { return t_; }
  void set_steps(uint64_t t);
  // State as named tensors (for checkpoints) and back; InputError on a mismatch.
  StateDict state() const;
  void load_state(const StateDict& sd, const std::string& source);

 private:
  OptimConfig cfg_;
  ParamSelection sel_;
  uint64_t t_ = 0;
  std::vector<std::vector<float>> m1_, m2_;  // per pid (Adam)
  std::vector<std::string> names_;
};

// lr and sigma schedules: constant; linear from v0 to v0 * decay over `steps`; multiplicative v0 * decay^t.
enum class ScheduleKind { Constant, Linear, Multiplicative };
ScheduleKind parse_schedule(const std::string& name, const std::string& where);
double schedule_value(ScheduleKind k, double v0, double decay, int64_t step, int64_t total_steps);

}  // namespace eggroll
