#include "core/ops/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/parallel.h"

namespace eggroll {
namespace ref {

int32_t argmax_row(const float* x, int64_t V) {
  // the largest value, NaN never taken (two passes, each a loop the compiler vectorises), then
  // the first index holding it: the first maximum, as a scan keeping the first strictly larger
  // value finds it
  constexpr int L = 16;  // running maxima of 16 lanes: element i into lane i % 16
  float lane[L];
  std::fill_n(lane, L, -INFINITY);
  int64_t i0 = 0;
  for (; i0 + L <= V; i0 += L)
    for (int l = 0; l < L; l++) lane[l] = x[i0 + l] > lane[l] ? x[i0 + l] : lane[l];
  float mx = -INFINITY;
  for (; i0 < V; i0++) mx = x[i0] > mx ? x[i0] : mx;
  for (int l = 0; l < L; l++) mx = lane[l] > mx ? lane[l] : mx;
  if (mx == -INFINITY) return 0;  // all -inf or NaN: token 0
  int64_t i = 0;
  while (x[i] != mx) i++;
  return int32_t(i);
}

}  // namespace ref

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t seed, uint64_t counter) {
  const int32_t V = int32_t(logits.size());
  // argmax ignores NaN; an all-NaN row gives token 0
  auto argmax = [&] { return ref::argmax_row(logits.data(), V); };
  if (p.temperature <= 0.f || p.top_k == 1) return argmax();
  // candidates sorted by logit (descending, ties by id), cut by top-k
  std::vector<int32_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [&](int32_t a, int32_t b) {
    float la = logits[size_t(a)], lb = logits[size_t(b)];
    if (std::isnan(la)) return false;
    if (std::isnan(lb)) return true;
    return la > lb || (la == lb && a < b);
  };
  size_t k = (p.top_k > 0 && p.top_k < V) ? size_t(p.top_k) : size_t(V);
  std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(k), idx.end(), better);
  idx.resize(k);
  const float mx = logits[size_t(idx[0])];
  if (!std::isfinite(mx)) return argmax();
  std::vector<double> prob(k);
  double total = 0;
  for (size_t i = 0; i < k; i++) {
    float l = logits[size_t(idx[i])];
    prob[i] = std::isnan(l) ? 0.0 : std::exp(double(l - mx) / double(p.temperature));
    total += prob[i];
  }
  // top-p: smallest prefix whose mass reaches p
  size_t keep = k;
  if (p.top_p < 1.f) {
    double acc = 0;
    for (size_t i = 0; i < k; i++) {
      acc += prob[i] / total;
      if (acc >= double(p.top_p)) {
        keep = i + 1;
        break;
      }
    }
    total = 0;
    for (size_t i = 0; i < keep; i++) total += prob[i];
  }
  double u = uniform01(seed, counter) * total;
  for (size_t i = 0; i < keep; i++) {
    u -= prob[i];
    if (u < 0) return idx[i];
  }
  return idx[keep - 1];
}


namespace ref {

void argmax_rows(const float* logits, int64_t rows, int64_t V, int32_t* out) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1)),
               [&](int64_t i) { out[i] = argmax_row(logits + i * V, V); });
}

void sample_rows(const float* logits, int64_t rows, int64_t V, float temperature, int top_k, float top_p,
                 const uint64_t* seeds, const uint64_t* counters, int32_t* out) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  for (int64_t i = 0; i < rows; i++)
    out[i] = sample_token(std::span<const float>(logits + i * V, size_t(V)), p, seeds[i], counters[i]);
}

}  // namespace ref
}  // namespace eggroll
