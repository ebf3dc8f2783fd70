#pragma once
// The run-level noise configuration of EGGROLL; the noise itself (keys, Philox elements, the
// step's NoiseSpec) is core/noise.h.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/noise.h"

namespace eggroll {

// ---- per-run configuration ------------------------------------------------------------

struct NoiseConfig {
  uint64_t seed = 0;
  int rank = 1;         // r >= 1
  int noise_reuse = 1;  // >= 0; 0 = one noise draw for the whole run
  NoiseDist dist = NoiseDist::Gaussian;
  float sigma = 1e-3f;  // finite, >= 0
};

// InputError ("noise.rank: ...", "noise.noise_reuse: ...", "noise.sigma: ...") on bad values.
void validate_noise_config(const NoiseConfig& cfg);

// The key of `member`'s noise for parameter `param_id` at step `epoch`.
NoiseKey noise_key(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch, uint32_t member);

// (m + n) * r: floats in one member's factor array of an m x n matrix.
size_t lowrank_factor_size(size_t m, size_t n, int rank);

// Unscaled factors [A (m x r) | B (n x r)] of `member` for matrix `param_id` (m x n) at step
// `epoch`; out holds lowrank_factor_size(m, n, cfg.rank) floats. Members 2k and 2k+1 get
// identical factors; their perturbations differ by the sign in lowrank_scale().
void fill_lowrank_factors(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch,
                          uint32_t member, size_t m, size_t n, float* out);
std::vector<float> lowrank_factors(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch,
                                   uint32_t member, size_t m, size_t n);

// Unscaled full-rank noise eps (n floats) of `member` for vector `param_id` at step `epoch`.
void fill_vector_noise(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch,
                       uint32_t member, size_t n, float* out);

// The perturbation of member i: E = lowrank_scale * A B^T for matrices,
// lowrank_scale = s_i sigma / sqrt(r); eps * vector_scale for vectors, vector_scale = s_i sigma.
float lowrank_scale(const NoiseConfig& cfg, uint32_t member);
float vector_scale(const NoiseConfig& cfg, uint32_t member);

// The spec of step `epoch` under a run's noise configuration.
inline NoiseSpec noise_spec(const NoiseConfig& c, uint64_t epoch) {
  NoiseSpec s;
  s.seed = c.seed;
  s.epoch_bucket = epoch_bucket(epoch, c.noise_reuse);
  s.rank = c.rank;
  s.dist = c.dist;
  s.sigma = c.sigma;
  return s;
}

}  // namespace eggroll
