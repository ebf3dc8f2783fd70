#include "es/optim.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

#include "core/error.h"
#include "core/ops/update.h"

namespace eggroll {

// ---- optimizers ---------------------------------------------------------------------

OptimKind parse_optim(const std::string& name, const std::string& where) {
  if (name == "sgd") return OptimKind::SGD;
  if (name == "adam") return OptimKind::Adam;
  if (name == "adamw") return OptimKind::AdamW;
  throw InputError(fmt::format("{}: '{}' is not one of sgd, adam, adamw", where, name));
}

Optimizer::Optimizer(const OptimConfig& cfg, const Model& m, const ParamSelection& sel) : cfg_(cfg), sel_(sel) {
  for (const auto& p : m.params) names_.push_back(p.name);
  if (cfg_.kind != OptimKind::SGD) {
    m1_.resize(m.params.size());
    m2_.resize(m.params.size());
    for (int pid : sel_.ids()) {
      m1_[size_t(pid)].assign(m.params[size_t(pid)].numel(), 0.f);
      m2_[size_t(pid)].assign(m.params[size_t(pid)].numel(), 0.f);
    }
  }
}

StepReport Optimizer::step(Model& m, std::vector<std::vector<float>>& grads, double lr) {
  // per array through the reference ops (es/ops_ref.h), which every backend's update mirrors
  StepReport rep;
  const auto ids = sel_.ids();
  double sq = 0;
  for (int pid : ids) sq += ref::sum_squares(grads[size_t(pid)].data(), int64_t(grads[size_t(pid)].size()));
  rep.grad_norm = std::sqrt(sq);
  double scale = 1.0;
  if (cfg_.clip_update_norm > 0 && rep.grad_norm > cfg_.clip_update_norm) scale = cfg_.clip_update_norm / rep.grad_norm;
  t_++;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_)), bc2 = 1.0 - std::pow(cfg_.beta2, double(t_));
  double usq = 0;
  for (int pid : ids) {
    float* w = m.params[size_t(pid)].data.data();
    const float* g = grads[size_t(pid)].data();
    const int64_t n = int64_t(m.params[size_t(pid)].numel());
    if (cfg_.kind == OptimKind::SGD)
      usq += ref::sgd_update(w, g, n, lr, scale);
    else
      usq += ref::adam_update(w, g, m1_[size_t(pid)].data(), m2_[size_t(pid)].data(), n, lr, cfg_.beta1, cfg_.beta2,
                              cfg_.eps, cfg_.weight_decay, cfg_.kind == OptimKind::AdamW, bc1, bc2, scale);
  }
  rep.update_norm = std::sqrt(usq);
  return rep;
}

StateDict Optimizer::state() const {
  StateDict sd;
  if (cfg_.kind == OptimKind::SGD) return sd;
  for (int pid : sel_.ids()) {
    const auto& a = m1_[size_t(pid)];
    const auto& b = m2_[size_t(pid)];
    sd.tensors.push_back(Tensor::from_f32("m." + names_[size_t(pid)], {int64_t(a.size())}, a.data(), DType::F32));
    sd.tensors.push_back(Tensor::from_f32("v." + names_[size_t(pid)], {int64_t(b.size())}, b.data(), DType::F32));
  }
  return sd;
}

void Optimizer::load_state(const StateDict& sd, const std::string& source) {
  if (cfg_.kind == OptimKind::SGD) return;
  for (int pid : sel_.ids())
    for (auto* vec : {&m1_[size_t(pid)], &m2_[size_t(pid)]}) {
      const std::string name = (vec == &m1_[size_t(pid)] ? "m." : "v.") + names_[size_t(pid)];
      const Tensor& t = sd.at(name, source);
      if (t.numel() != vec->size() || t.dtype != DType::F32)
        throw InputError(fmt::format("{}: optimizer tensor '{}' has the wrong size or type", source, name));
      *vec = t.to_f32();
    }
}

void Optimizer::set_steps(uint64_t t) { t_ = t; }

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
