#include "es/perturbation.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

#include "core/error.h"

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
// The PerturbationView's noise elements per pair of each parameter (0 = not perturbed).
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

Perturbation::Perturbation(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg,
                                         NoiseCache cache, Backend* backend)
    : cfg_(cfg), be_(backend ? *backend : host_), buffers_(be_), keep_(cache == NoiseCache::Keep) {
  validate_noise_config(cfg_);
  if (sel.lowrank.size() != m.params.size() || sel.full.size() != m.params.size())
    throw std::invalid_argument("Perturbation: selection does not match the model");
  len_ = noise_lengths(m, sel, cfg.rank);
  view_.noise = noise_spec(cfg, 0);
  view_.lowrank = sel.lowrank;
  view_.full = sel.full;
}

void Perturbation::begin_step(uint64_t epoch, int directions) {
  const uint32_t bucket = epoch_bucket(epoch, cfg_.noise_reuse);
  const bool same = cached_ && directions == directions_ && bucket == view_.noise.epoch_bucket;
  // the arrays of the previous step fit when the number of pairs is the same: refilled in place
  // (a fresh allocation each step would fault in hundreds of MB of new pages every step)
  const bool reuse = !arrays_.empty() && (directions + 1) / 2 == (directions_ + 1) / 2;
  view_.noise.epoch_bucket = bucket;
  directions_ = directions;
  if (!keep_ || same) return;
  const int64_t pairs = (int64_t(directions) + 1) / 2;
  if (!reuse) {
    free_cache();
    try {
      arrays_.assign(len_.size(), nullptr);
      for (size_t pid = 0; pid < len_.size(); pid++) {
        if (!len_[pid]) continue;
        arrays_[pid] = buffers_.array(pairs * len_[pid]);
        bytes_ += size_t(pairs * len_[pid]) * sizeof(float);
      }
      view_.cache.assign(arrays_.begin(), arrays_.end());
    } catch (...) {
      free_cache();  // no half-allocated cache for the next step to reuse
      throw;
    }
  }
  cached_ = false;  // until every array holds this step's factors
  for (size_t pid = 0; pid < len_.size(); pid++)
    if (len_[pid]) be_.fill_noise_cache(view_.noise, uint32_t(pid), len_[pid], pairs, arrays_[pid]);
  cached_ = true;
}

void Perturbation::set_sigma(float sigma) {
  cfg_.sigma = sigma;
  view_.noise.sigma = sigma;
}

void Perturbation::free_cache() {
  buffers_.release_all();
  arrays_.clear();
  view_.cache.clear();
  bytes_ = 0;
  cached_ = false;
}

}  // namespace eggroll
