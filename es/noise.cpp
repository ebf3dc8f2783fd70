#include "es/noise.h"

#include <cmath>
#include <stdexcept>

#include "core/error.h"

namespace eggroll {

NoiseDist parse_noise_dist(std::string_view name, const std::string& where) {
  if (name == "gaussian" || name == "normal") return NoiseDist::Gaussian;
  if (name == "rademacher") return NoiseDist::Rademacher;
  throw InputError(where + ": unknown noise distribution '" + std::string(name) +
                   "' (expected gaussian or rademacher)");
}

const char* noise_dist_name(NoiseDist d) {
  return d == NoiseDist::Rademacher ? "rademacher" : "gaussian";
}

void fill_noise(const NoiseKey& key, NoiseDist dist, size_t start, size_t count, float* out) {
  if (count == 0) return;
  if (start > kMaxNoiseElements || count > kMaxNoiseElements - start)
    throw std::out_of_range("fill_noise: range exceeds 2^34 elements");
  const uint64_t end = static_cast<uint64_t>(start) + count;
  uint64_t j = start;
  while (j < end) {
    const uint32_t block = static_cast<uint32_t>(j >> 2);
    const uint32_t first = static_cast<uint32_t>(j & 3u);
    const uint64_t block_end = (static_cast<uint64_t>(block) + 1) * 4;
    const uint32_t last = static_cast<uint32_t>((end < block_end ? end : block_end) - j) + first;
    if (first == 0 && last == 4) {
      noise_block_values(key, dist, block, out);  // a whole block: the Gaussian pairs share their work
      out += 4;
    } else {
      const Philox4x32 b = noise_block(key, block);
      for (uint32_t w = first; w < last; ++w) *out++ = noise_from_block(b, dist, w);
    }
    j += last - first;
  }
}

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
