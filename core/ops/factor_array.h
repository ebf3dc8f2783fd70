#pragma once
// The factor array of (parameter, member) for the noise and update references: read from the
// step's cache, or generated into a per-thread buffer that is kept while the pair repeats.
#include <cstdint>
#include <vector>

#include "core/noise.h"

namespace eggroll::ref::detail {

// Generated factors of one pair (the two members of an antithetic pair share them): elements
// [start, start + data.size()) of its array.
struct FactorBuffer {
  std::vector<float> data;
  int64_t pair = -1, start = 0;
};
// Elements [start, start + count) of the factor array of (pid, member), generated into buf (kept
// while the pair and the range repeat; every element is a function of its index alone, so a
// sub-range holds the whole array's bits).
inline const float* generated_range(const NoiseSpec& ns, uint32_t pid, uint32_t member, int64_t start, int64_t count,
                                    FactorBuffer& buf) {
  if (buf.pair != int64_t(member / 2) || buf.start != start || int64_t(buf.data.size()) != count) {
    buf.data.resize(static_cast<size_t>(count));
    fill_noise(noise_spec_key(ns, pid, member), ns.dist, size_t(start), size_t(count), buf.data.data());
    buf.pair = member / 2, buf.start = start;
  }
  return buf.data.data();
}
// The factor array of (pid, member): cached, or generated into buf (kept while the pair repeats).
inline const float* factor_array(const NoiseSpec& ns, uint32_t pid, uint32_t member, int64_t len, const float* cache,
                                 FactorBuffer& buf) {
  if (cache) return cache + int64_t(member / 2) * len;
  return generated_range(ns, pid, member, 0, len, buf);
}


}  // namespace eggroll::ref::detail
