#include "core/noise.h"

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
  if (count >= 16 && noise_simd_active()) return fill_noise_simd(key, dist, start, count, out);
  fill_noise_scalar(key, dist, start, count, out);
}

void fill_noise_scalar(const NoiseKey& key, NoiseDist dist, size_t start, size_t count, float* out) {
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

}  // namespace eggroll
