#pragma once
// The element function of the random model init (Model::random, write_random_checkpoint, and the
// device init of cuda/init.h), as one host/device function so that both give the same
// bits: parameter pid of a model made with `seed` holds, at element j,
//   lo + (hi - lo) u,  u = top 24 bits of splitmix64(base + j) / 2^24 in [0, 1),
//   base = splitmix64(seed ^ splitmix64(pid + 1)),
// evaluated as one fused multiply-add (fmaf: a single rounding on the host and on the device,
// whatever the compiler's contraction settings). [lo, hi) per parameter: init_range() in
// rwkv/model_layout.h.
#include <math.h>

#include <cstdint>

#include "core/dtype.h"
#include "core/hash.h"
#include "core/noise.h"

namespace eggroll {

EGGROLL_HD uint64_t init_param_base(uint64_t seed, uint64_t pid) { return splitmix64(seed ^ splitmix64(pid + 1)); }

EGGROLL_HD float init_value(uint64_t base, uint64_t j, float lo, float hi) {
  const uint64_t h = splitmix64(base + j);
  const float u = float(h >> 40) * (1.0f / 16777216.0f);
  return fmaf(hi - lo, u, lo);
}

}  // namespace eggroll

namespace eggroll::ref {

// CPU reference of init_uniform (fp32 values; bf16: f32_to_bf16 of them).
inline void init_uniform(float* out, int64_t n, uint64_t base, float lo, float hi) {
  for (int64_t j = 0; j < n; j++) out[j] = init_value(base, uint64_t(j), lo, hi);
}

// The arithmetic of one materialised element (host and device).
EGGROLL_HD float perturb_element(float base, float scale, float eps) { return fmaf(scale, eps, base); }

// CPU reference of perturb_full (fp32).
inline void perturb_full(const NoiseKey& key, NoiseDist dist, float scale, const float* base, float* out, int64_t n) {
  for (int64_t j = 0; j < n; j++) out[j] = perturb_element(base[j], scale, noise_element(key, dist, uint64_t(j)));
}
// CPU reference of perturb_full (bf16 bits).
inline void perturb_full_bf16(const NoiseKey& key, NoiseDist dist, float scale, const uint16_t* base, uint16_t* out,
                              int64_t n) {
  for (int64_t j = 0; j < n; j++)
    out[j] = f32_to_bf16(perturb_element(bf16_to_f32(base[j]), scale, noise_element(key, dist, uint64_t(j))));
}

}  // namespace eggroll::ref
