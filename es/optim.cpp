#include "es/optim.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

#include "core/error.h"

namespace eggroll {

// ---- optimizers ---------------------------------------------------------------------

OptimKind parse_optim(const std::string& name, const std::string& where) {
  if (name == "sgd") return OptimKind::SGD;
  if (name == "adam") return OptimKind::Adam;
  if (name == "adamw") return OptimKind::AdamW;
  throw InputError(fmt::format("{}: '{}' is not one of sgd, adam, adamw", where, name));
}

// ---- schedules ------------------------------------------------------------------------

ScheduleKind parse_schedule(const std::string& name, const std::string& where) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "multiplicative") return ScheduleKind::Multiplicative;
  throw InputError(fmt::format("{}: '{}' is not one of constant, linear, multiplicative", where, name));
}

double schedule_value(ScheduleKind k, double v0, double decay, int64_t step, int64_t total_steps) {
  switch (k) {
    case ScheduleKind::Constant: return v0;
    case ScheduleKind::Linear: {
      const double frac = total_steps > 1 ? double(step) / double(total_steps - 1) : 0.0;
      return v0 * (1.0 + (decay - 1.0) * std::min(1.0, frac));
    }
    case ScheduleKind::Multiplicative: return v0 * std::pow(decay, double(step));
  }
  return v0;
}

}  // namespace eggroll
