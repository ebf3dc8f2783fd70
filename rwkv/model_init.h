#pragma once
// The element function of the random model init (Model::random, write_random_checkpoint, and the
// device init of cuda/device_random.h), as one host/device function so that both give the same
// bits: parameter pid of a model made with `seed` holds, at element j,
//   lo + (hi - lo) u,  u = top 24 bits of splitmix64(base + j) / 2^24 in [0, 1),
//   base = splitmix64(seed ^ splitmix64(pid + 1)),
// evaluated as one fused multiply-add (fmaf: a single rounding on the host and on the device,
// whatever the compiler's contraction settings). [lo, hi) per parameter: init_range() in
// rwkv/model_layout.h.
#include <math.h>

#include <cstdint>

#include "core/hash.h"

namespace eggroll {

EGGROLL_HD uint64_t init_param_base(uint64_t seed, uint64_t pid) { return splitmix64(seed ^ splitmix64(pid + 1)); }

EGGROLL_HD float init_value(uint64_t base, uint64_t j, float lo, float hi) {
  const uint64_t h = splitmix64(base + j);
  const float u = float(h >> 40) * (1.0f / 16777216.0f);
  return fmaf(hi - lo, u, lo);
}

}  // namespace eggroll
