#pragma once
// Which parameters an ES run perturbs, and the EGGROLL perturbation of a population step.
//
// Member i perturbs each selected matrix W (stored [m, n]) by E_i = s_i sigma A_i B_i^T / sqrt(r)
// (factors from core/noise.h) and, unless vectors are frozen, each selected vector by
// s_i sigma eps_i. The step never forms E_i: after the shared GEMM it adds the low-rank
// correction per row (rwkv/step.h, Backend::lowrank_add), O(r (m + n)) per token.
#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu_backend.h"
#include "es/noise.h"
#include "rwkv/model.h"
#include "rwkv/step.h"

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
// NoiseCache::Keep, every selected parameter's factors for the step's pairs ([pairs][len] per
// parameter, made by Backend::fill_noise_cache). It lives in host memory for Forward::step, or in
// `backend`'s memory (e.g. the CUDA backend's, for its ModelStep; the backend must outlive this
// object). A cache is kept while the epoch bucket and the number of directions stay the same
// (the factors are unscaled, so sigma may change). m gives only the parameters' shapes (its data
// may be empty, as in rwkv/model_layout.h's layouts).
class Perturbation {
 public:
  Perturbation(const Model& m, const ParamSelection& sel, const NoiseConfig& cfg, NoiseCache cache,
                      Backend* backend = nullptr);
  Perturbation(const Perturbation&) = delete;
  Perturbation& operator=(const Perturbation&) = delete;

  // Prepares step `epoch` for `directions` members (Keep mode: generates the cache, unless it
  // already holds this epoch bucket's factors, as with noise_reuse 0 or k > 1).
  void begin_step(uint64_t epoch, int directions);
  void set_sigma(float sigma);
  const NoiseConfig& config() const { return cfg_; }
  size_t cache_bytes() const { return bytes_; }  // bytes held by the per-step noise cache
  // What the step reads (rwkv/step.h's PerturbationView); pointers in the backend's memory.
  const PerturbationView& view() const { return view_; }

 private:
  void free_cache();
  NoiseConfig cfg_;
  CpuBackend host_;         // the backend when none is given
  Backend& be_;
  BackendBuffers buffers_;  // the cache
  std::vector<float*> arrays_;  // its arrays per parameter (view_.cache, writable)
  std::vector<int64_t> len_;  // noise elements per pair of each parameter (0 = not perturbed)
  bool keep_;
  PerturbationView view_;
  int directions_ = 0;
  bool cached_ = false;
  size_t bytes_ = 0;
};

}  // namespace eggroll
