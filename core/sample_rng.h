#pragma once
// The sampler's random draws: uniform in [0, 1) from (seed, counter) by a splitmix64-style
// hash, as one host/device function so the CPU and CUDA samplers draw the same numbers.
#include <cstdint>

#include "core/philox.h"  // EGGROLL_HD

namespace eggroll {

EGGROLL_HD double uniform01(uint64_t seed, uint64_t counter) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + counter + 0x632BE59BD9B4E019ull;
  for (int i = 0; i < 2; i++) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
  }
  return double(x >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace eggroll
