#pragma once
// The optimizer's configuration (ascent on the ES gradient: SGD W += lr g; Adam/AdamW with bias
// correction, AdamW with decoupled weight decay) and the lr / sigma schedules. The optimizer step
// and its state (moments, step count) belong to the population engine (es/population_engine.h), which
// runs it on its backend (Backend::sgd_update / adam_update).
#include <cstdint>
#include <string>

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

// lr and sigma schedules: constant; linear from v0 to v0 * decay over `steps`; multiplicative v0 * decay^t.
enum class ScheduleKind { Constant, Linear, Multiplicative };
ScheduleKind parse_schedule(const std::string& name, const std::string& where);
double schedule_value(ScheduleKind k, double v0, double decay, int64_t step, int64_t total_steps);

}  // namespace eggroll
