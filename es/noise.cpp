#include "es/noise.h"

#include <cmath>
#include <stdexcept>

#include "core/error.h"

namespace eggroll {

void validate_noise_config(const NoiseConfig& cfg) {
  require(cfg.rank >= 1, "noise.rank", "must be >= 1, got " + std::to_string(cfg.rank));
  require(cfg.noise_reuse >= 0, "noise.noise_reuse",
          "must be >= 0 (0 = same noise forever), got " + std::to_string(cfg.noise_reuse));
  require(std::isfinite(cfg.sigma) && cfg.sigma >= 0.0f, "noise.sigma",
          "must be finite and >= 0, got " + std::to_string(cfg.sigma));
}

NoiseKey noise_key(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch, uint32_t member) {
  NoiseKey k;
  k.seed = cfg.seed;
  k.param_id = param_id;
  k.epoch_bucket = epoch_bucket(epoch, cfg.noise_reuse);
  k.pair = member_pair(member);
  return k;
}

size_t lowrank_factor_size(size_t m, size_t n, int rank) {
  if (rank < 1) throw std::invalid_argument("lowrank_factor_size: rank must be >= 1");
  return (m + n) * static_cast<size_t>(rank);
}

void fill_lowrank_factors(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch,
                          uint32_t member, size_t m, size_t n, float* out) {
  fill_noise(noise_key(cfg, param_id, epoch, member), cfg.dist, 0,
             lowrank_factor_size(m, n, cfg.rank), out);
}

std::vector<float> lowrank_factors(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch,
                                   uint32_t member, size_t m, size_t n) {
  std::vector<float> out(lowrank_factor_size(m, n, cfg.rank));
  fill_lowrank_factors(cfg, param_id, epoch, member, m, n, out.data());
  return out;
}

void fill_vector_noise(const NoiseConfig& cfg, uint32_t param_id, uint64_t epoch,
                       uint32_t member, size_t n, float* out) {
  fill_noise(noise_key(cfg, param_id, epoch, member), cfg.dist, 0, n, out);
}

float lowrank_scale(const NoiseConfig& cfg, uint32_t member) {
  return member_sign(member) * cfg.sigma / std::sqrt(static_cast<float>(cfg.rank));
}

float vector_scale(const NoiseConfig& cfg, uint32_t member) {
  return member_sign(member) * cfg.sigma;
}

}  // namespace eggroll
