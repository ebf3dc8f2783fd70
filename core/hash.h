#pragma once
// splitmix64's finaliser: a fast, well-mixed 64-bit hash for deriving seeds and streams.
// Host and device (the random model init of core/ops/init.h runs on both).
#include <cstdint>

#include "core/philox.h"  // EGGROLL_HD

namespace eggroll {

EGGROLL_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace eggroll
