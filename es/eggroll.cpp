#include "es/eggroll.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>

#include "core/error.h"
#include "core/gemm.h"
#include "core/ops/ops.h"

namespace eggroll {

// ---- selection --------------------------------------------------------------------------

bool glob_match(const std::string& pattern, const std::string& name) {
  // iterative wildcard match with backtracking on the last '*'
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      p++, n++;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') p++;
  return p == pattern.size();
}

size_t ParamSelection::count() const {
  size_t c = 0;
  for (size_t i = 0; i < lowrank.size(); i++) c += lowrank[i] || full[i];
  return c;
}

std::vector<int> ParamSelection::ids() const {
  std::vector<int> out;
  for (size_t i = 0; i < lowrank.size(); i++)
    if (lowrank[i] || full[i]) out.push_back(int(i));
  return out;
}

ParamSelection select_params(const Model& m, const std::vector<std::string>& include,
                             const std::vector<std::string>& exclude, bool freeze_nonlora, const std::string& where) {
  ParamSelection s;
  s.lowrank.assign(m.params.size(), 0);
  s.full.assign(m.params.size(), 0);
  auto any = [&](const std::vector<std::string>& pats, const std::string& name) {
    for (auto& p : pats)
      if (glob_match(p, name)) return true;
    return false;
  };
  for (const auto& pats : {include, exclude})
    for (const auto& p : pats) {
      bool hit = false;
      for (const auto& prm : m.params) hit = hit || glob_match(p, prm.name);
      if (!hit) throw InputError(fmt::format("{}: pattern '{}' matches no parameter of the model", where, p));
    }
  for (size_t i = 0; i < m.params.size(); i++) {
    const Param& p = m.params[i];
    if (!any(include, p.name) || any(exclude, p.name)) continue;
    if (p.is_matrix) s.lowrank[i] = 1;
    else if (!freeze_nonlora) s.full[i] = 1;
  }
  return s;
}

// ---- perturbation ---------------------------------------------------------------------

namespace {
// The StepPerturbation's noise elements per pair of each parameter (0 = not perturbed).
std::vector<int64_t> noise_lengths(const Model& m, const ParamSelection& sel, int rank) {
  std::vector<int64_t> len(m.params.size(), 0);
  for (size_t pid = 0; pid < m.params.size(); pid++) {
    const Param& p = m.params[pid];
    if (sel.lowrank[pid]) len[pid] = (p.rows + p.cols) * rank;
    else if (sel.full[pid]) len[pid] = p.rows * p.cols;
  }
  return len;
}
}  // namespace

EggrollPerturbation::EggrollPerturbation(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg,
                                         NoiseCache cache, Backend* backend)
    : cfg_(cfg) {
  validate_noise_config(cfg_);
  if (sel.lowrank.size() != m.params.size() || sel.full.size() != m.params.size())
    throw std::invalid_argument("EggrollPerturbation: selection does not match the model");
  p_ = std::make_unique<OpsPerturbation>(backend ? *backend : host_, sel.lowrank, sel.full, noise_lengths(m, sel, cfg.rank),
                                         noise_spec(cfg, 0), cfg.noise_reuse, cache == NoiseCache::Keep);
}

EggrollPerturbation::~EggrollPerturbation() = default;

void EggrollPerturbation::begin_step(uint64_t epoch, int directions) { p_->begin_step(epoch, directions); }

void EggrollPerturbation::set_sigma(float sigma) {
  cfg_.sigma = sigma;
  p_->set_sigma(sigma);
}

size_t EggrollPerturbation::cache_bytes() const { return p_->cache_bytes(); }

const StepPerturbation& EggrollPerturbation::step() const { return p_->step(); }

// ---- gradient -------------------------------------------------------------------------

void eggroll_gradient(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg, uint64_t epoch,
                      std::span<const float> fitness, std::vector<std::vector<float>>& grads, size_t pair_begin,
                      size_t pair_end) {
  const int64_t N = int64_t(fitness.size());
  if (N < 2 || N % 2) throw std::invalid_argument("eggroll_gradient: the population must be even and >= 2");
  const int64_t p0 = int64_t(std::min(pair_begin, size_t(N / 2)));
  const int64_t pairs = std::max<int64_t>(int64_t(std::min(pair_end, size_t(N / 2))) - p0, 0), r = cfg.rank;
  const NoiseSpec ns = noise_spec(cfg, epoch);
  grads.resize(m.params.size());
  std::vector<float> operands;
  for (int pid : sel.ids()) {
    const Param& p = m.params[size_t(pid)];
    auto& g = grads[size_t(pid)];
    g.assign(p.numel(), 0.f);
    if (pairs <= 0) continue;
    if (sel.lowrank[size_t(pid)]) {
      // the update GEMM: A_all [m, K] B_all [n, K]^T, K = pairs r
      const int64_t K = pairs * r;
      operands.resize(size_t((p.rows + p.cols) * K));
      float* A_all = operands.data();
      float* B_all = A_all + p.rows * K;
      ref::update_factors(ns, uint32_t(pid), p.rows, p.cols, fitness.data(), N, p0, pairs, nullptr, A_all, B_all);
      ref::linear_f32(B_all, false, A_all, g.data(), p.rows, K, p.cols);
    } else {
      ref::vector_gradient(ns, uint32_t(pid), int64_t(p.numel()), fitness.data(), N, p0, pairs, nullptr, g.data());
    }
  }
}

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
