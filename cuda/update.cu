// The ES side on the device: update-GEMM operands, vector gradients, optimizers, fitness shaping.
// CPU references: ref::update_factors / vector_gradient / sgd_update / adam_update / sum_squares
// (core/ops/update.h) and
// shape_fitness (es/fitness.h).
#include <cuda_runtime.h>

#include <cfloat>
#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/cuda_ops.h"

namespace eggroll::cuda {

namespace {

constexpr int kThreads = 256;

// Coefficient of pair k, exactly as ref::update_factors computes it (double, one rounding to float
// for matrices after the 1/sqrt(r)).
__device__ __forceinline__ double pair_coef(const float* fitness, int64_t k, float sigma, int64_t N) {
  return double(fitness[2 * k] - fitness[2 * k + 1]) * double(sigma) / sqrt(double(N));
}

// One thread per (pair, Philox block of the pair's factor array).
// k: index in the pair range [p0, p0 + pairs); pair p0 + k.
__global__ void update_factors_kernel(NoiseSpec ns, uint32_t pid, int64_t m, int64_t n,
                                      const float* __restrict__ fitness, int64_t N, int64_t p0, int64_t pairs,
                                      const float* __restrict__ cache, float* __restrict__ A_all,
                                      float* __restrict__ B_all) {
  const int64_t r = ns.rank, K = pairs * r, len = (m + n) * r, nb = (len + 3) / 4;
  const int64_t total = nb * pairs;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = t / nb, b = t - k * nb, pair = p0 + k;
    const float s = float(pair_coef(fitness, pair, ns.sigma, N) / sqrt(double(r)));
    float v[4];
    if (cache) {
      for (int w = 0; w < 4; w++) v[w] = 4 * b + w < len ? cache[pair * len + 4 * b + w] : 0.f;
    } else {
      noise_block_values(noise_spec_key(ns, pid, uint32_t(2 * pair)), ns.dist, uint32_t(b), v);
    }
    for (int w = 0; w < 4; w++) {
      const int64_t e = 4 * b + w;
      if (e >= len) break;
      if (e < m * r) {
        const int64_t o = e / r, q = e - o * r;
        A_all[o * K + k * r + q] = s * v[w];
      } else {
        const int64_t e2 = e - m * r, j = e2 / r, q = e2 - j * r;
        B_all[j * K + k * r + q] = v[w];
      }
    }
  }
}

// One thread per element j; pairs summed in order (as the CPU loop).
__global__ void vector_gradient_kernel(NoiseSpec ns, uint32_t pid, int64_t n, const float* __restrict__ fitness,
                                       int64_t N, int64_t p0, int64_t pairs, const float* __restrict__ cache,
                                       float* __restrict__ g) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int64_t k = p0; k < p0 + pairs; k++) {
      const float s = float(pair_coef(fitness, k, ns.sigma, N));
      const float e = cache ? cache[k * n + j] : noise_element(noise_spec_key(ns, pid, uint32_t(2 * k)), ns.dist, uint64_t(j));
      acc += s * e;
    }
    g[j] = acc;
  }
}

// Writes the block's double sum to partial[blockIdx.x].
__device__ __forceinline__ void block_partial(double v, double* partial) {
  __shared__ double red[32];
  const double s = detail::block_sum(v, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_squares_kernel(const float* __restrict__ x, int64_t n, double* __restrict__ partial) {
  double s = 0;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x)
    s += double(x[j]) * x[j];
  block_partial(s, partial);
}

// out[0] = sum of out[1 .. 1 + count) (one block, fixed order).
__global__ void finish_sum_kernel(double* out, int count) {
  __shared__ double red[32];
  double s = 0;
  for (int j = threadIdx.x; j < count; j += blockDim.x) s += out[1 + j];
  s = detail::block_sum(s, red);
  if (threadIdx.x == 0) out[0] = s;
}

// w[j] = float(before + delta) (and its bf16 copy); returns the square of the applied change.
__device__ __forceinline__ double apply_change(float* w, uint16_t* wbf, int64_t j, float before, double delta) {
  const float after = float(double(before) + delta);
  w[j] = after;
  if (wbf) wbf[j] = detail::f32_to_bf16_bits(after);
  const double d = double(after) - double(before);
  return d * d;
}

__global__ void sgd_kernel(float* __restrict__ w, const float* __restrict__ g, int64_t n, double lr, double scale,
                           double* __restrict__ partial, uint16_t* __restrict__ wbf) {
  double sq = 0;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    sq += apply_change(w, wbf, j, w[j], lr * (double(g[j]) * scale));
  }
  block_partial(sq, partial);
}

__global__ void adam_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m1,
                            float* __restrict__ m2, int64_t n, double lr, double beta1, double beta2, double eps,
                            double wd, bool adamw, double bc1, double bc2, double scale, double* __restrict__ partial,
                            uint16_t* __restrict__ wbf) {
  double sq = 0;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    const float before = w[j];
    double gj = double(g[j]) * scale;
    if (!adamw && wd > 0) gj -= wd * double(before);
    const float a = float(beta1 * double(m1[j]) + (1 - beta1) * gj);
    const float b = float(beta2 * double(m2[j]) + (1 - beta2) * gj * gj);
    m1[j] = a;
    m2[j] = b;
    double delta = lr * (double(a) / bc1) / (sqrt(double(b) / bc2) + eps);
    if (adamw) delta -= lr * wd * double(before);
    sq += apply_change(w, wbf, j, before, delta);
  }
  block_partial(sq, partial);
}

// ---- fitness (one block) ----------------------------------------------------------------------

template <class T, class Op>
__device__ T block_reduce(T v, T* red, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T t = lane < warps ? red[lane] : red[0];
    for (int o = 16; o > 0; o >>= 1) t = op(t, __shfl_xor_sync(0xffffffffu, t, o));
    if (lane == 0) red[0] = t;
  }
  __syncthreads();
  return red[0];
}

struct MinOp {
  __device__ double operator()(double a, double b) const { return a < b ? a : b; }
};
struct MaxOp {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};
struct AndOp {
  __device__ int operator()(int a, int b) const { return a & b; }
};
struct OrOp {
  __device__ int operator()(int a, int b) const { return a | b; }
};

__device__ __forceinline__ float to_finite_float(double x) {
  if (isnan(x)) return 0.0f;
  const double c = x < -double(FLT_MAX) ? -double(FLT_MAX) : (x > double(FLT_MAX) ? double(FLT_MAX) : x);
  return float(c);
}

__global__ void __launch_bounds__(1024) shape_fitness_kernel(const float* __restrict__ rewards, int64_t G, int64_t P, bool rank,
                                     float* __restrict__ fitness, double* __restrict__ score) {
  __shared__ double redd[32];
  __shared__ int redi[32];
  const int64_t total = G * P;
  // worst finite reward (0 when none is finite)
  double lo = DBL_MAX;
  int any = 0;
  for (int64_t j = threadIdx.x; j < total; j += blockDim.x) {
    const double x = rewards[j];
    if (isfinite(x)) {
      lo = x < lo ? x : lo;
      any = 1;
    }
  }
  lo = block_reduce(lo, redd, MinOp());
  const int found = block_reduce(any, redi, OrOp());
  const double worst = found ? lo : 0.0;
  // direction sums in generation order (bit-identical to the CPU)
  for (int64_t d = threadIdx.x; d < G; d += blockDim.x) {
    double s = 0;
    for (int64_t p = 0; p < P; p++) {
      const double x = rewards[p * G + d];
      s += isfinite(x) ? x : worst;
    }
    if (!isfinite(s)) s = s > 0 ? DBL_MAX : -DBL_MAX;
    score[d] = s;
  }
  __syncthreads();
  if (rank) {
    for (int64_t d = threadIdx.x; d < G; d += blockDim.x) {
      const double x = score[d];
      int64_t less = 0, eq = 0;
      for (int64_t e = 0; e < G; e++) {
        less += score[e] < x;
        eq += score[e] == x;
      }
      const double rk = 0.5 * double(2 * less + eq - 1);
      fitness[d] = float((rk + 0.5) / double(G) - 0.5);
    }
    return;
  }
  // z-score on x / s, s = max(1, max |x|) (as zscore_fitness)
  int same = 1;
  double amax = 1.0;
  for (int64_t d = threadIdx.x; d < G; d += blockDim.x) {
    same &= score[d] == score[0];
    amax = fmax(amax, fabs(score[d]));
  }
  same = block_reduce(same, redi, AndOp());
  amax = block_reduce(amax, redd, MaxOp());
  if (same) {
    for (int64_t d = threadIdx.x; d < G; d += blockDim.x) fitness[d] = 0.f;
    return;
  }
  double sum = 0;
  for (int64_t d = threadIdx.x; d < G; d += blockDim.x) sum += score[d] / amax;
  const double mean = detail::block_sum(sum, redd) / double(G);
  double var = 0;
  for (int64_t d = threadIdx.x; d < G; d += blockDim.x) {
    const double t = score[d] / amax - mean;
    var += t * t;
  }
  var = detail::block_sum(var, redd) / double(G);
  const double denom = sqrt(var + 1e-5 / (amax * amax));
  const bool ok = denom > 0.0 && isfinite(denom);
  for (int64_t d = threadIdx.x; d < G; d += blockDim.x)
    fitness[d] = ok ? to_finite_float((score[d] / amax - mean) / denom) : 0.f;
}

void finish_sum(double* out, void* stream) {
  finish_sum_kernel<<<1, kThreads, 0, detail::as_stream(stream)>>>(out, kReduceBlocks);
  detail::check_launch("finish_sum");
}

}  // namespace

namespace {
void check_pairs(const char* op, int64_t N, int64_t pair_begin, int64_t pairs) {
  if (N < 2 || N % 2) throw std::invalid_argument(std::string("cuda::") + op + ": the population must be even and >= 2");
  if (pair_begin < 0 || pairs < 0 || pair_begin + pairs > N / 2)
    throw std::invalid_argument(std::string("cuda::") + op + ": pair range outside the population");
}
}  // namespace

void update_factors(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const float* fitness, int64_t N,
                    int64_t pair_begin, int64_t pairs, const float* cache, float* A_all, float* B_all, void* stream) {
  check_pairs("update_factors", N, pair_begin, pairs);
  const int64_t len = (m + n) * ns.rank;
  if (len <= 0 || pairs == 0) return;
  update_factors_kernel<<<detail::grid_for(((len + 3) / 4) * pairs, kThreads), kThreads, 0,
                          detail::as_stream(stream)>>>(ns, pid, m, n, fitness, N, pair_begin, pairs, cache, A_all,
                                                       B_all);
  detail::check_launch("update_factors");
}

void vector_gradient(const NoiseSpec& ns, uint32_t pid, int64_t n, const float* fitness, int64_t N,
                     int64_t pair_begin, int64_t pairs, const float* cache, float* g, void* stream) {
  check_pairs("vector_gradient", N, pair_begin, pairs);
  if (n <= 0) return;
  vector_gradient_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, detail::as_stream(stream)>>>(
      ns, pid, n, fitness, N, pair_begin, pairs, cache, g);
  detail::check_launch("vector_gradient");
}

void sum_squares(const float* x, int64_t n, double* out, void* stream) {
  sum_squares_kernel<<<kReduceBlocks, kThreads, 0, detail::as_stream(stream)>>>(x, n > 0 ? n : 0, out + 1);
  detail::check_launch("sum_squares");
  finish_sum(out, stream);
}

void sgd_update(float* w, const float* g, int64_t n, double lr, double scale, double* sq_out, uint16_t* w_bf16,
                void* stream) {
  sgd_kernel<<<kReduceBlocks, kThreads, 0, detail::as_stream(stream)>>>(w, g, n > 0 ? n : 0, lr, scale, sq_out + 1,
                                                                         w_bf16);
  detail::check_launch("sgd_update");
  finish_sum(sq_out, stream);
}

void adam_update(float* w, const float* g, float* m1, float* m2, int64_t n, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bool adamw, double bc1, double bc2, double scale, double* sq_out,
                 uint16_t* w_bf16, void* stream) {
  adam_kernel<<<kReduceBlocks, kThreads, 0, detail::as_stream(stream)>>>(w, g, m1, m2, n > 0 ? n : 0, lr, beta1, beta2,
                                                                          eps, weight_decay, adamw, bc1, bc2, scale,
                                                                          sq_out + 1, w_bf16);
  detail::check_launch("adam_update");
  finish_sum(sq_out, stream);
}

void shape_fitness(const float* rewards, int64_t G, int64_t P, bool rank, float* fitness, double* direction_score,
                   void* stream) {
  if (G <= 0 || P <= 0) throw std::invalid_argument("cuda::shape_fitness: G and P must be > 0");
  shape_fitness_kernel<<<1, 1024, 0, detail::as_stream(stream)>>>(rewards, G, P, rank, fitness, direction_score);
  detail::check_launch("shape_fitness");
}

}  // namespace eggroll::cuda
