#pragma once
// The factor array of (parameter, member) for the noise and update references: read from the
// step's cache, or generated into a per-thread buffer that is kept while the pair repeats.
#include <cstdint>
#include <vector>

#include "core/noise.h"

namespace eggroll::ref::detail {

// Generated factors of one pair (the two members of an antithetic pair share them).
struct FactorBuffer {
  std::vector<float> data;
  int64_t pair = -1;
};
// The factor array of (pid, member): cached, or generated into buf (kept while the pair repeats).
inline const float* factor_array(const NoiseSpec& ns, uint32_t pid, uint32_t member, int64_t len, const float* cache,
                          FactorBuffer& buf) {
  if (cache) return cache + int64_t(member / 2) * len;
  if (buf.pair != int64_t(member / 2) || int64_t(buf.data.size()) != len) {
    buf.data.resize(static_cast<size_t>(len));
    fill_noise(noise_spec_key(ns, pid, member), ns.dist, 0, size_t(len), buf.data.data());
    buf.pair = member / 2;
  }
  return buf.data.data();
}


}  // namespace eggroll::ref::detail
