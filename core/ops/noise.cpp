#include "core/ops/noise.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>
#include "core/ops/factor_array.h"
#include "core/parallel.h"

namespace eggroll {
namespace ref {
using detail::factor_array;
using detail::FactorBuffer;

void lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X,
                 float* Y, const int32_t* members, int64_t B, const float* cache) {
  const int r = ns.rank;
  const int64_t len = (m + n) * r;
  const int64_t in = x_times_p ? m : n, out = x_times_p ? n : m;
  // two rows per chunk: an antithetic pair's rows usually sit next to each other (one generation)
  parallel_for_chunks(B, 2, [&](int64_t b, int64_t e) {
    FactorBuffer buf;
    std::vector<float> t(static_cast<size_t>(r));
    for (int64_t i = b; i < e; i++) {
      const uint32_t mem = uint32_t(members[i]);
      const float* F = factor_array(ns, pid, mem, len, cache, buf);
      const float* A = F;          // [m, r]
      const float* Bf = F + m * r;  // [n, r]
      const float* In = x_times_p ? A : Bf;
      const float* Out = x_times_p ? Bf : A;
      const float c = noise_spec_lowrank_scale(ns, mem);
      if (r == 1 && i + 1 < e && uint32_t(members[i + 1]) / 2 == mem / 2) {  // both members of the pair
        lowrank_correct_pair(X + i * in, in, In, Out, out, c, noise_spec_lowrank_scale(ns, uint32_t(members[i + 1])),
                             Y + i * out);
        i++;
        continue;
      }
      lowrank_correct_row(X + i * in, in, In, Out, out, r, c, Y + i * out, t.data());
    }
  });
}

// The 16 interleaved partial sums of a contraction (fmas), added in order.
inline float sum16(const float* part) {
  float sum = 0.f;
  for (int l = 0; l < 16; l++) sum += part[l];
  return sum;
}

// lowrank_correct_row's rank-1 scales for R consecutive rows x [R, in] that share In:
// t[j] = c[j] (In . x_j). R = 2: the rows of an antithetic pair, whose factor is then read once for
// both; each row's bits are those it gets alone (R = 1).
template <int R>
void rank1_scales(const float* x, int64_t in, const float* In, const float* c, float* t) {
  constexpr int L = 16;
  float part[R][L] = {};
  int64_t k = 0;
  for (; k + L <= in; k += L)
    for (int j = 0; j < R; j++)
      for (int l = 0; l < L; l++) part[j][l] = std::fma(x[j * in + k + l], In[k + l], part[j][l]);
  for (int l = 0; k < in; k++, l++)
    for (int j = 0; j < R; j++) part[j][l] = std::fma(x[j * in + k], In[k], part[j][l]);
  for (int j = 0; j < R; j++) t[j] = c[j] * sum16(part[j]);
}
// ... and the whole rank-1 correction of those rows (y [R, out]): the scales, then y_j += Out t[j]
// as one fma per element.
template <int R>
void correct_rank1_rows(const float* x, int64_t in, const float* In, const float* Out, int64_t out, const float* c,
                        float* y, float* t) {
  rank1_scales<R>(x, in, In, c, t);
  for (int64_t o = 0; o < out; o++)
    for (int j = 0; j < R; j++) y[j * out + o] = std::fma(Out[o], t[j], y[j * out + o]);
}

void lowrank_correct_pair(const float* x, int64_t in, const float* In, const float* Out, int64_t out, float c0,
                          float c1, float* y) {
  const float c[2] = {c0, c1};
  float t[2];
  correct_rank1_rows<2>(x, in, In, Out, out, c, y, t);
}

void lowrank_correct_row(const float* x, int64_t in, const float* In, const float* Out, int64_t out, int r, float c,
                         float* y, float* t) {
  if (r == 1) return correct_rank1_rows<1>(x, in, In, Out, out, &c, y, t);
  constexpr int L = 16;
  for (int q = 0; q < r; q++) {
    float part[L] = {};
    int64_t k = 0;
    for (; k + L <= in; k += L)
      for (int l = 0; l < L; l++) part[l] = std::fma(x[k + l], In[(k + l) * r + q], part[l]);
    for (int l = 0; k < in; k++, l++) part[l] = std::fma(x[k], In[k * r + q], part[l]);
    t[q] = c * sum16(part);
  }
  for (int64_t o = 0; o < out; o++) {
    float acc = 0.f;
    for (int q = 0; q < r; q++) acc = std::fma(Out[o * r + q], t[q], acc);
    y[o] += acc;
  }
}

// Where each run of consecutive rows of one pair starts, then B (lowrank_pair_runs).
std::vector<int64_t> pair_run_starts(const int32_t* members, int64_t B) {
  std::vector<int64_t> run;
  for (int64_t i = 0; i < B; i++)
    if (i == 0 || uint32_t(members[i]) / 2 != uint32_t(members[i - 1]) / 2) run.push_back(i);
  run.push_back(std::max<int64_t>(B, 0));
  return run;
}

int64_t lowrank_pair_runs(const int32_t* members, int64_t B) {
  return int64_t(pair_run_starts(members, B).size()) - 1;
}

void lowrank_rank1_terms(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, bool x_times_p, const float* X,
                         const int32_t* members, int64_t B, const float* cache, std::vector<float>& scratch,
                         const float** out, float* t) {
  if (ns.rank != 1) throw std::invalid_argument("lowrank_rank1_terms: rank " + std::to_string(ns.rank) + ", not 1");
  const int64_t len = m + n, in = x_times_p ? m : n;
  const int64_t in_at = x_times_p ? 0 : m, out_at = x_times_p ? m : 0;  // In and Out in [A (m) | B (n)]
  // a run's factor array is generated once, into scratch slot u
  const std::vector<int64_t> run = pair_run_starts(members, B);
  const int64_t runs = int64_t(run.size()) - 1;
  if (!cache && scratch.size() < size_t(runs * len)) scratch.resize(size_t(runs * len));
  parallel_for(runs, 1, [&](int64_t u) {
    const int64_t b = run[size_t(u)], e = run[size_t(u) + 1];
    const uint32_t first = uint32_t(members[b]);
    const float* F;
    if (cache) {
      F = cache + int64_t(first / 2) * len;
    } else {
      float* f = scratch.data() + u * len;
      fill_noise(noise_spec_key(ns, pid, first), ns.dist, 0, size_t(len), f);
      F = f;
    }
    for (int64_t i = b; i < e; i++) {
      const float c[2] = {noise_spec_lowrank_scale(ns, uint32_t(members[i])),
                          i + 1 < e ? noise_spec_lowrank_scale(ns, uint32_t(members[i + 1])) : 0.f};
      out[i] = F + out_at;
      if (i + 1 < e) {  // two rows of the pair: the factor read once
        rank1_scales<2>(X + i * in, in, F + in_at, c, t + i);
        out[++i] = F + out_at;
      } else {
        rank1_scales<1>(X + i * in, in, F + in_at, c, t + i);
      }
    }
  });
}

void embedding_lowrank_add(const NoiseSpec& ns, uint32_t pid, int64_t m, int64_t n, const int32_t* tokens,
                           float* X, const int32_t* members, int64_t B, const float* cache) {
  const int r = ns.rank;
  const int64_t len = (m + n) * r;
  // rows in parallel, two per chunk (an antithetic pair's rows usually sit next to each other).
  // Without a cache only the elements a row reads are generated (each element is a function of
  // its index alone): its token's row of A (r values) and B (n r values, kept while the pair repeats)
  // -- not the whole (m + n) r array, m being the vocabulary.
  parallel_for_chunks(B, 2, [&](int64_t b, int64_t e) {
    FactorBuffer bbuf, abuf;  // B of the pair; the token's row of A
    for (int64_t i = b; i < e; i++) {
      const uint32_t mem = uint32_t(members[i]);
      const int64_t arow = int64_t(tokens[i]) * r;
      const float* F = cache ? cache + int64_t(mem / 2) * len : nullptr;  // the pair's cached array
      const float* a = F ? F + arow : generated_range(ns, pid, mem, arow, r, abuf);
      const float* Bf = F ? F + m * r : generated_range(ns, pid, mem, m * r, n * r, bbuf);
      const float c = noise_spec_lowrank_scale(ns, mem);
      float* x = X + i * n;
      for (int64_t o = 0; o < n; o++) {
        float acc = 0.f;
        for (int q = 0; q < r; q++) acc += Bf[o * r + q] * a[q];
        x[o] += c * acc;
      }
    }
  });
}

void vector_noise_rows(const NoiseSpec& ns, uint32_t pid, const float* base, int64_t n, const int32_t* members,
                       int64_t B, const float* cache, float* out) {
  // rows in parallel, two per chunk (an antithetic pair's rows usually sit next to each other)
  parallel_for_chunks(B, 2, [&](int64_t b, int64_t e) {
    FactorBuffer buf;
    for (int64_t i = b; i < e; i++) {
      const uint32_t mem = uint32_t(members[i]);
      const float* eps = factor_array(ns, pid, mem, n, cache, buf);
      const float c = noise_spec_vector_scale(ns, mem);
      float* o = out + i * n;
      std::copy_n(base, n, o);
      for (int64_t j = 0; j < n; j++) o[j] += c * eps[j];
    }
  });
}

void fill_noise_cache(const NoiseSpec& ns, uint32_t pid, int64_t len, int64_t pairs, float* out) {
  parallel_for(pairs, 1, [&](int64_t p) {
    fill_noise(noise_spec_key(ns, pid, uint32_t(2 * p)), ns.dist, 0, size_t(len), out + p * len);
  });
}

void philox_blocks(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out) {
  for (int64_t i = 0; i < n; i++) {
    const Philox4x32 b = philox4x32_10(counters[4 * i], counters[4 * i + 1], counters[4 * i + 2],
                                       counters[4 * i + 3], keys[2 * i], keys[2 * i + 1]);
    for (int w = 0; w < 4; w++) out[4 * i + w] = b.v[w];
  }
}

}  // namespace ref
}  // namespace eggroll
