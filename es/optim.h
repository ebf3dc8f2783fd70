#pragma once
// Optimizers (ascent on the ES gradient) and the lr / sigma schedules.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "es/perturbation.h"
#include "rwkv/model.h"

namespace eggroll {

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
