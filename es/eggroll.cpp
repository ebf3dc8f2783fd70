#include "es/eggroll.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>

#include "core/error.h"
#include "core/gemm.h"
#include "es/ops_ref.h"

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

EggrollPerturbation::EggrollPerturbation(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg,
                                         NoiseCache cache)
    : m_(m), sel_(sel), cfg_(cfg), mode_(cache) {
  validate_noise_config(cfg_);
  cache_.resize(m.params.size());
}

static size_t noise_len(const Param& p, int rank, bool lowrank) {
  return lowrank ? lowrank_factor_size(size_t(p.rows), size_t(p.cols), rank) : p.numel();
}

void EggrollPerturbation::begin_step(uint64_t epoch, int directions) {
  epoch_ = epoch;
  const bool same = cached_ && directions == directions_ && epoch_bucket(epoch, cfg_.noise_reuse) == cached_bucket_;
  directions_ = directions;
  if (mode_ != NoiseCache::Keep || same) return;  // the factors are unscaled: sigma may change
  cached_ = true;
  cached_bucket_ = epoch_bucket(epoch, cfg_.noise_reuse);
  const int pairs = (directions + 1) / 2;
  const auto ids = sel_.ids();
  for (int pid : ids) {
    const bool lr = sel_.lowrank[size_t(pid)];
    cache_[size_t(pid)].resize(size_t(pairs) * noise_len(m_.params[size_t(pid)], cfg_.rank, lr));
  }
  const int64_t jobs = int64_t(ids.size()) * pairs;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t job = 0; job < jobs; job++) {
    const int pid = ids[size_t(job / pairs)];
    const int pair = int(job % pairs);
    const Param& p = m_.params[size_t(pid)];
    const bool lr = sel_.lowrank[size_t(pid)];
    const size_t len = noise_len(p, cfg_.rank, lr);
    float* dst = cache_[size_t(pid)].data() + size_t(pair) * len;
    if (lr) fill_lowrank_factors(cfg_, uint32_t(pid), epoch, uint32_t(2 * pair), size_t(p.rows), size_t(p.cols), dst);
    else fill_vector_noise(cfg_, uint32_t(pid), epoch, uint32_t(2 * pair), p.numel(), dst);
  }
}

size_t EggrollPerturbation::cache_bytes() const {
  size_t b = 0;
  for (auto& c : cache_) b += c.size() * sizeof(float);
  return b;
}

const float* EggrollPerturbation::factors(int pid, int member, std::vector<float>& buf) const {
  const Param& p = m_.params[size_t(pid)];
  const bool lr = sel_.lowrank[size_t(pid)];
  const size_t len = noise_len(p, cfg_.rank, lr);
  if (mode_ == NoiseCache::Keep) {
    if (member < 0 || member >= directions_)
      throw std::logic_error(fmt::format("perturbation: member {} outside the step's {} directions", member, directions_));
    return cache_[size_t(pid)].data() + size_t(member / 2) * len;
  }
  buf.resize(len);
  if (lr) fill_lowrank_factors(cfg_, uint32_t(pid), epoch_, uint32_t(member), size_t(p.rows), size_t(p.cols), buf.data());
  else fill_vector_noise(cfg_, uint32_t(pid), epoch_, uint32_t(member), p.numel(), buf.data());
  return buf.data();
}

void EggrollPerturbation::add_linear(int pid, bool x_times_p, const float* X, int64_t in, float* Y, int64_t out,
                                     std::span<const int> members) {
  if (!sel_.lowrank[size_t(pid)]) return;
  const Param& p = m_.params[size_t(pid)];
  const int r = cfg_.rank;
  const int64_t rows = int64_t(members.size());
  // rows grouped by antithetic pair, so regenerated factors are made once per pair and call
  std::map<int, std::vector<int64_t>> by_pair;
  for (int64_t i = 0; i < rows; i++) by_pair[members[size_t(i)] / 2].push_back(i);
  std::vector<const std::vector<int64_t>*> groups;
  for (auto& [pair, list] : by_pair) groups.push_back(&list);
#pragma omp parallel
  {
    std::vector<float> buf, t(static_cast<size_t>(r));
#pragma omp for schedule(dynamic, 1)
    for (size_t gi = 0; gi < groups.size(); gi++) {
      const auto& list = *groups[gi];
      const float* F = factors(pid, members[size_t(list[0])], buf);
      const float* A = F;                  // [rows(p), r]
      const float* Bf = F + p.rows * r;    // [cols(p), r]
      const float* In = x_times_p ? A : Bf;   // contracted with x
      const float* Out = x_times_p ? Bf : A;  // expanded to y
      for (int64_t i : list)
        ref::lowrank_correct_row(X + i * in, in, In, Out, out, r, lowrank_scale(cfg_, uint32_t(members[size_t(i)])),
                            Y + i * out, t.data());
    }
  }
}

bool EggrollPerturbation::perturbs_vector(int pid) const { return sel_.full[size_t(pid)] != 0; }

void EggrollPerturbation::add_vector(int pid, int member, float* out, int64_t n) {
  std::vector<float> buf;
  const float* eps = factors(pid, member, buf);
  const float c = vector_scale(cfg_, uint32_t(member));
  for (int64_t j = 0; j < n; j++) out[j] += c * eps[j];
}

void EggrollPerturbation::add_embedding(int pid, std::span<const int32_t> tokens, float* X, int64_t C,
                                        std::span<const int> members) {
  if (!sel_.lowrank[size_t(pid)]) return;
  const Param& p = m_.params[size_t(pid)];
  const int r = cfg_.rank;
  std::vector<float> buf;
  for (size_t i = 0; i < tokens.size(); i++) {
    const float* F = factors(pid, members[i], buf);
    const float* a = F + int64_t(tokens[i]) * r;  // row tok of A
    const float* Bf = F + p.rows * r;
    const float c = lowrank_scale(cfg_, uint32_t(members[i]));
    float* x = X + int64_t(i) * C;
    for (int64_t o = 0; o < C; o++) {
      float acc = 0.f;
      for (int q = 0; q < r; q++) acc += Bf[o * r + q] * a[q];
      x[o] += c * acc;
    }
  }
}

// ---- gradient -------------------------------------------------------------------------

void eggroll_gradient(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg, uint64_t epoch,
                      std::span<const float> fitness, std::vector<std::vector<float>>& grads, size_t pair_begin,
                      size_t pair_end) {
  const int64_t N = int64_t(fitness.size());
  if (N < 2 || N % 2) throw std::invalid_argument("eggroll_gradient: the population must be even and >= 2");
  const int64_t p0 = int64_t(std::min(pair_begin, size_t(N / 2)));
  const int64_t pairs = int64_t(std::min(pair_end, size_t(N / 2))) - p0, r = cfg.rank;
  grads.resize(m.params.size());
  std::vector<double> coef(static_cast<size_t>(std::max<int64_t>(pairs, 0)));
  for (int64_t k = 0; k < pairs; k++)
    coef[size_t(k)] =
        double(fitness[size_t(2 * (p0 + k))] - fitness[size_t(2 * (p0 + k) + 1)]) * cfg.sigma / std::sqrt(double(N));
  for (int pid : sel.ids()) {
    const Param& p = m.params[size_t(pid)];
    auto& g = grads[size_t(pid)];
    g.assign(p.numel(), 0.f);
    if (pairs <= 0) continue;
    if (sel.lowrank[size_t(pid)]) {
      const int64_t M = p.rows, Nn = p.cols, K = pairs * r;
      std::vector<float> Aall(size_t(M * K)), Ball(size_t(Nn * K));
#pragma omp parallel
      {
        std::vector<float> f(lowrank_factor_size(size_t(M), size_t(Nn), int(r)));
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 0; k < pairs; k++) {
          fill_lowrank_factors(cfg, uint32_t(pid), epoch, uint32_t(2 * (p0 + k)), size_t(M), size_t(Nn), f.data());
          const float s = float(coef[size_t(k)] / std::sqrt(double(r)));
          for (int64_t o = 0; o < M; o++)
            for (int64_t q = 0; q < r; q++) Aall[size_t(o * K + k * r + q)] = s * f[size_t(o * r + q)];
          for (int64_t j = 0; j < Nn; j++)
            for (int64_t q = 0; q < r; q++) Ball[size_t(j * K + k * r + q)] = f[size_t(M * r + j * r + q)];
        }
      }
      gemm_xwt(Aall.data(), Ball.data(), g.data(), M, K, Nn);
    } else {
      std::vector<float> eps(p.numel());
      for (int64_t k = 0; k < pairs; k++) {
        fill_vector_noise(cfg, uint32_t(pid), epoch, uint32_t(2 * (p0 + k)), p.numel(), eps.data());
        const float s = float(coef[size_t(k)]);
        for (size_t j = 0; j < eps.size(); j++) g[j] += s * eps[j];
      }
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
  StepReport rep;
  const auto ids = sel_.ids();
  double sq = 0;
  for (int pid : ids)
    for (float v : grads[size_t(pid)]) sq += double(v) * v;
  rep.grad_norm = std::sqrt(sq);
  double scale = 1.0;
  if (cfg_.clip_update_norm > 0 && rep.grad_norm > cfg_.clip_update_norm) scale = cfg_.clip_update_norm / rep.grad_norm;
  t_++;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_)), bc2 = 1.0 - std::pow(cfg_.beta2, double(t_));
  double usq = 0;
  for (int pid : ids) {
    auto& w = m.params[size_t(pid)].data;
    auto& g = grads[size_t(pid)];
    const int64_t n = int64_t(w.size());
    double local = 0;
#pragma omp parallel for reduction(+ : local) schedule(static)
    for (int64_t j = 0; j < n; j++) {
      double gj = double(g[size_t(j)]) * scale;
      double delta;
      if (cfg_.kind == OptimKind::SGD) {
        delta = lr * gj;
      } else {
        if (cfg_.kind == OptimKind::Adam && cfg_.weight_decay > 0) gj -= cfg_.weight_decay * w[size_t(j)];
        float& a = m1_[size_t(pid)][size_t(j)];
        float& b = m2_[size_t(pid)][size_t(j)];
        a = float(cfg_.beta1 * a + (1 - cfg_.beta1) * gj);
        b = float(cfg_.beta2 * b + (1 - cfg_.beta2) * gj * gj);
        delta = lr * (a / bc1) / (std::sqrt(b / bc2) + cfg_.eps);
        if (cfg_.kind == OptimKind::AdamW) delta -= lr * cfg_.weight_decay * w[size_t(j)];
      }
      const float before = w[size_t(j)];
      w[size_t(j)] = float(before + delta);
      const double d = double(w[size_t(j)]) - before;
      local += d * d;
    }
    usq += local;
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
