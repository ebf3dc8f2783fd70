// The op table: every op of the Backend interface (core/backend.h), one row per op and shape
// case, run on every backend present against the CPU reference (core/ops/, namespace ref), and
// the CPU reference against a float64 implementation written here where the op is exact in
// float64. Columns:
//   float64  ref:: output against the float64 implementation (row tolerance tol64, its reason)
//   cpu      CpuBackend against ref::, identical bits (it runs the same code)
//   checked  the GPU-rules checking backend (tests/checked_backend.h: device memory kept apart,
//            every array in bounds of one allocation) against ref::, identical bits
//   cuda     CudaBackend against ref:: with the row's tolerance, when the build has CUDA and a
//            GPU is present; otherwise reported SKIPPED (never counted as passed)
// Rows marked "cuda kernel" check CUDA kernels that are not Backend ops (raw Philox, the noise
// fill, bf16 conversion, fitness shaping) and run in the cuda column only.
//
// Errors: float outputs use max |got - want| / max |want| over the output ("normalised"; for
// outputs marked delta, of the change from the input, so small corrections are not hidden by the
// array they are added to); integer outputs count differing elements; reductions (double) use
// |got - want| / |want|. tol 0 = identical bits.
//
//   test_backend_ops                 the table (ctest test_backend_ops); exit 1 if a row fails
//   test_backend_ops --filter TEXT   only rows whose op or case contains TEXT
//   test_backend_ops --backend NAME  one column only (cpu, checked, cuda; cuda without a GPU: exit 77)
//   test_backend_ops --perf          per-op time (median of 7 runs after a warm-up), GB/s (the row's
//                                    array bytes, each counted once) and GFLOP/s (null where not
//                                    counted) for each backend, JSON lines on stdout; --large uses
//                                    rows with 7.2B-model shapes (C = 4096, FFN 14336, B = 1024)
//                                    instead of the test's. "prepared" linear rows time the packing too.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "checked_backend.h"
#include "core/backend.h"
#include "core/cpu_backend.h"
#include "core/dtype.h"
#include "core/hash.h"
#include "core/noise.h"
#include "core/ops/init.h"
#include "core/ops/ops.h"
#include "es/noise.h"
#include "es/perturbation.h"
#include "es/fitness.h"
#include "es/noise.h"
#include "rwkv/model.h"
#if EGGROLL_HAVE_CUDA
#include "cuda/cuda_ops.h"
#endif

using namespace eggroll;

namespace {

// ---- buffers and rows ----------------------------------------------------------------------------

enum class T { F32, BF16, I32, U32, U64, F64 };
size_t tsize(T t) {
  switch (t) {
    case T::BF16:
      return 2;
    case T::U64:
    case T::F64:
      return 8;
    default:
      return 4;
  }
}

struct Buf {
  std::string name;
  T t = T::F32;
  std::vector<uint8_t> b;
  size_t n() const { return b.size() / tsize(t); }
  double at(size_t i) const {  // value as double (F32, BF16, F64)
    if (t == T::F32) return reinterpret_cast<const float*>(b.data())[i];
    if (t == T::BF16) return bf16_to_f32(reinterpret_cast<const uint16_t*>(b.data())[i]);
    return reinterpret_cast<const double*>(b.data())[i];
  }
  uint64_t bits(size_t i) const {
    uint64_t v = 0;
    std::memcpy(&v, b.data() + i * tsize(t), tsize(t));
    return v;
  }
};

// One compared output: buffer `buf`, tolerance on the cuda column (and its reason); delta_from:
// compare the change from that buffer's input values; count: compare only the first `count`
// elements (0: all).
struct Out {
  int buf;
  double tol;
  std::string why;
  int delta_from = -1;
  size_t count = 0;
  double tol64 = -1;  // float64 column tolerance of this output (< 0: the row's tol64)
};

using Ptrs = std::vector<void*>;
using F64 = std::vector<std::vector<double>>;  // float64 values of each output, in outs order

struct Row {
  std::string op, shape;
  std::vector<Buf> bufs;
  std::vector<Out> outs;
  std::function<void(Backend&, const Ptrs&)> run;   // the op through a backend (pointers in its memory)
  std::function<void(const Ptrs&)> ref;             // the same through ref:: (host pointers)
  std::function<F64(const std::vector<Buf>&)> f64;  // float64 values from the inputs (empty: none)
  double tol64 = 0;
  std::string why64;  // reason for tol64, or why there is no float64 column
  bool cuda_only = false;
  double flops = 0;  // per run, for --perf (0: not counted)
  // a check of a backend's outputs among themselves (every column): "" or what is wrong
  std::function<std::string(const std::vector<Buf>& got)> self_check;

  template <class X = float>
  int add(const std::string& name, T t, const std::vector<X>& v) {
    Buf b{name, t, {}};
    b.b.resize(v.size() * sizeof(X));
    if (!v.empty()) std::memcpy(b.b.data(), v.data(), b.b.size());
    bufs.push_back(std::move(b));
    return int(bufs.size()) - 1;
  }
  int f32(const std::string& name, const std::vector<float>& v) { return add(name, T::F32, v); }
  int i32(const std::string& name, const std::vector<int32_t>& v) { return add(name, T::I32, v); }
  // an output-only array filled with a NaN pattern (bytes 0xff): an element the op fails to
  // write differs from the reference's
  int out(const std::string& name, T t, size_t n) {
    Buf b{name, t, std::vector<uint8_t>(n * tsize(t), 0xff)};
    bufs.push_back(std::move(b));
    return int(bufs.size()) - 1;
  }
  const float* in(int i) const { return reinterpret_cast<const float*>(bufs[size_t(i)].b.data()); }
};

template <class X = float>
X* P(const Ptrs& p, int i) {
  return static_cast<X*>(p[size_t(i)]);
}
template <class X = float>
const X* IN(const std::vector<Buf>& b, int i) {
  return reinterpret_cast<const X*>(b[size_t(i)].b.data());
}

std::mt19937_64 g_rng(20261204);
// uniform in [lo, hi): a counter hash (fast enough for the --large rows' arrays)
std::vector<float> rnd(size_t n, float lo = -1.f, float hi = 1.f) {
  const uint64_t base = g_rng();
  std::vector<float> v(n);
  for (size_t j = 0; j < n; j++) v[j] = lo + (hi - lo) * (float(splitmix64(base + j) >> 40) * (1.0f / 16777216.0f));
  return v;
}
std::vector<int32_t> rnd_int(size_t n, int32_t lo, int32_t hi) {
  std::uniform_int_distribution<int32_t> d(lo, hi);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
std::vector<int32_t> permutation(int32_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; i++) p[size_t(i)] = i;
  std::shuffle(p.begin(), p.end(), g_rng);
  return p;
}
std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t j = 0; j < v.size(); j++) o[j] = f32_to_bf16(v[j]);
  return o;
}
std::string S(int64_t v) { return std::to_string(v); }
// magnitudes in [0.5, 1), random signs: every optimizer change is of the same order (so an ulp of w
// is a known fraction of it)
std::vector<float> rnd_away(size_t n) {
  auto v = rnd(n, 0.5f, 1.f);
  std::bernoulli_distribution neg(0.5);
  for (auto& x : v) x = neg(g_rng) ? -x : x;
  return v;
}
double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Tolerance reasons used by many rows.
const char* kExact = "same arithmetic, no rounding choice: identical bits";
const char* kPointwise = "device exp/tanh/expf differ from the host's libm by a few ulp";
const char* kSums = "fp32 sums in a different order (and FMA contraction): a few ulp of the largest partial sums";

// ---- the table -------------------------------------------------------------------------------------

std::deque<Row> g_rows;  // a deque: a row's reference stays valid while later rows are added
Row& row(const std::string& op, const std::string& shape) {
  g_rows.push_back(Row{});
  g_rows.back().op = op;
  g_rows.back().shape = shape;
  return g_rows.back();
}

void memory_rows() {
  Row& r = row("alloc/upload/copy/zero/download/release", "1001 floats, offsets, a temporary buffer");
  const int a = r.f32("a", rnd(1001)), b = r.out("b", T::F32, 1001), h = r.f32("h", rnd(257));
  r.run = [=](Backend& be, const Ptrs& p) {
    std::vector<float> host(257);
    be.download(host.data(), p[size_t(h)], 257 * 4);  // back on the host as uploaded
    void* tmp = be.alloc(257 * 4);
    be.upload(tmp, host.data(), 257 * 4);
    be.copy(P(p, b) + 10, P(p, a) + 3, 500 * 4);
    be.copy(P(p, b) + 600, tmp, 257 * 4);
    be.zero(P(p, a) + 100, 50 * 4);
    be.zero(P(p, b), 10 * 4);
    be.synchronize();
    be.release(tmp);
  };
  r.ref = [=](const Ptrs& p) {
    std::memcpy(P(p, b) + 10, P(p, a) + 3, 500 * 4);
    std::memcpy(P(p, b) + 600, P(p, h), 257 * 4);
    std::memset(P(p, a) + 100, 0, 50 * 4);
    std::memset(P(p, b), 0, 10 * 4);
  };
  r.outs = {{a, 0, kExact}, {b, 0, kExact}};
  r.why64 = "byte copies: nothing to compute in float64";
}

void layer_rows() {
  // embed
  for (bool bf : {false, true})
    for (auto [B, V, Cc] : {std::tuple<int64_t, int64_t, int64_t>{1, 50, 64}, {13, 300, 256}, {6, 7, 640}}) {
      const int64_t C = Cc;
      Row& r = row("embed", std::string(bf ? "bf16" : "f32") + " B=" + S(B) + " V=" + S(V) + " C=" + S(C));
      const auto e = rnd(size_t(V * C));
      auto tok = rnd_int(size_t(B), 0, int32_t(V - 1));
      tok[0] = int32_t(V - 1);
      const int emb = bf ? r.add("emb", T::BF16, to_bf16(e)) : r.f32("emb", e), tk = r.i32("tokens", tok),
                out = r.out("out", T::F32, size_t(B * C));
      r.run = [=](Backend& be, const Ptrs& p) {
        WeightView w{p[size_t(emb)], bf ? DType::BF16 : DType::F32, V, C};
        be.embed(w, P<int32_t>(p, tk), B, P(p, out));
      };
      r.ref = [=](const Ptrs& p) {
        ref::embed_rows(bf ? nullptr : P(p, emb), bf ? P<uint16_t>(p, emb) : nullptr, P<int32_t>(p, tk), B, C,
                        P(p, out));
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> o(static_cast<size_t>(B * C));
        for (int64_t i = 0; i < B; i++)
          for (int64_t j = 0; j < C; j++)
            o[size_t(i * C + j)] = in[size_t(emb)].at(size_t(IN<int32_t>(in, tk)[i] * C + j));
        return F64{o};
      };
      r.tol64 = 0, r.why64 = "a row copy (bf16 widened exactly)";
      r.outs = {{out, 0, kExact}};
      r.flops = 0;
    }
  // layer norm: shared and per-row w/b, n not a multiple of 16, B = 1
  for (auto [B, n, wrow, brow] : {std::tuple<int64_t, int64_t, bool, bool>{1, 64, false, false},
                                  {13, 1000, false, false},
                                  {13, 1000, true, true},
                                  {7, 768, true, false}}) {
    Row& r = row("layer_norm", "B=" + S(B) + " n=" + S(n) + (wrow ? " w per-row" : " w shared") +
                                   (brow ? " b per-row" : " b shared"));
    const int64_t ws = wrow ? n : 0, bs = brow ? n : 0;
    const int x = r.f32("x", rnd(size_t(B * n), -3, 5)), w = r.f32("w", rnd(size_t(wrow ? B * n : n))),
              b = r.f32("b", rnd(size_t(brow ? B * n : n))), y = r.out("y", T::F32, size_t(B * n));
    r.run = [=](Backend& be, const Ptrs& p) {
      be.layer_norm(P(p, x), {P(p, w), ws}, {P(p, b), bs}, P(p, y), B, n, 1e-5f);
    };
    r.ref = [=](const Ptrs& p) { ref::layer_norm_rows(P(p, x), P(p, w), ws, P(p, b), bs, P(p, y), B, n, 1e-5f); };
    r.f64 = [=](const std::vector<Buf>& in) {
      std::vector<double> o(static_cast<size_t>(B * n));
      for (int64_t i = 0; i < B; i++) {
        const float* xr = IN(in, x) + i * n;
        double mu = 0, var = 0;
        for (int64_t j = 0; j < n; j++) mu += xr[j];
        mu /= double(n);
        for (int64_t j = 0; j < n; j++) var += (xr[j] - mu) * (xr[j] - mu);
        var /= double(n);
        for (int64_t j = 0; j < n; j++)
          o[size_t(i * n + j)] = (xr[j] - mu) / std::sqrt(var + 1e-5) * IN(in, w)[i * ws + j] + IN(in, b)[i * bs + j];
      }
      return F64{o};
    };
    r.tol64 = 2e-6, r.why64 = "statistics in double; mean and 1/std rounded to fp32, then 3 fp32 operations";
    r.outs = {{y, 1e-5, "device statistics in fp32 (two passes) vs double on the host"}};
    r.flops = double(8 * B * n);
  }
  // token shifts: permuted slots of 17, layer 1 of 3, mixes shared and per-row
  for (auto [B, Cc] : {std::pair<int64_t, int64_t>{1, 64}, {13, 256}}) {
    const int64_t C = Cc, Sl = 17, L = 3;
    auto slots = permutation(int32_t(Sl));
    slots.resize(size_t(B));
    {
      Row& r =
          row("time_shift6", "B=" + S(B) + " C=" + S(C) + " slots permuted of 17, mixes r,k,a shared, w,v,g per-row");
      const int xa = r.f32("xa", rnd(size_t(B * C))), st = r.f32("state", rnd(size_t(Sl * L * C))),
                sl = r.i32("slots", slots), out = r.out("out", T::F32, size_t(6 * B * C));
      int mu[6];
      int64_t ms[6];
      for (int q = 0; q < 6; q++) {
        ms[q] = q % 2 ? C : 0;
        mu[q] = r.f32("mu" + S(q), rnd(size_t(q % 2 ? B * C : C), 0, 1));
      }
      r.run = [=](Backend& be, const Ptrs& p) {
        VecArg m[6];
        for (int q = 0; q < 6; q++) m[q] = {P(p, mu[q]), ms[q]};
        be.time_shift6(P(p, xa), P(p, st), P<int32_t>(p, sl), L * C, C, m, P(p, out), B, C);
      };
      r.ref = [=](const Ptrs& p) {
        const float* m[6];
        for (int q = 0; q < 6; q++) m[q] = P(p, mu[q]);
        ref::time_shift6(P(p, xa), P(p, st), P<int32_t>(p, sl), L * C, C, m, ms, P(p, out), B, C);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> o(static_cast<size_t>(6 * B * C)), s(IN(in, st), IN(in, st) + Sl * L * C);
        for (int64_t i = 0; i < B; i++)
          for (int64_t j = 0; j < C; j++) {
            const int64_t si = int64_t(IN<int32_t>(in, sl)[i]) * L * C + C + j;
            const double x = IN(in, xa)[i * C + j], prev = IN(in, st)[si];
            for (int q = 0; q < 6; q++)
              o[size_t(q * B * C + i * C + j)] = x + (prev - x) * IN(in, mu[q])[i * ms[q] + j];
            s[size_t(si)] = x;
          }
        return F64{o, s};
      };
      r.tol64 = 1e-6, r.why64 = "3 fp32 operations per element; the state is a copy";
      r.outs = {{out, 1e-6, "FMA contraction of x + (prev - x) mu: one ulp"},
                {st, 0, "the state rows are copies: identical"}};
    }
    {
      Row& r = row("channel_shift", "B=" + S(B) + " C=" + S(C) + " slots permuted of 17, layer offset 2C, mu per-row");
      const int xf = r.f32("xf", rnd(size_t(B * C))), st = r.f32("state", rnd(size_t(Sl * L * C))),
                sl = r.i32("slots", slots), mu = r.f32("mu", rnd(size_t(B * C), 0, 1)),
                out = r.out("out", T::F32, size_t(B * C));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.channel_shift(P(p, xf), P(p, st), P<int32_t>(p, sl), L * C, 2 * C, {P(p, mu), C}, P(p, out), B, C);
      };
      r.ref = [=](const Ptrs& p) {
        ref::channel_shift(P(p, xf), P(p, st), P<int32_t>(p, sl), L * C, 2 * C, P(p, mu), C, P(p, out), B, C);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> o(static_cast<size_t>(B * C)), s(IN(in, st), IN(in, st) + Sl * L * C);
        for (int64_t i = 0; i < B; i++)
          for (int64_t j = 0; j < C; j++) {
            const int64_t si = int64_t(IN<int32_t>(in, sl)[i]) * L * C + 2 * C + j;
            const double x = IN(in, xf)[i * C + j];
            o[size_t(i * C + j)] = x + (IN(in, st)[si] - x) * IN(in, mu)[i * C + j];
            s[size_t(si)] = x;
          }
        return F64{o, s};
      };
      r.tol64 = 1e-6, r.why64 = "3 fp32 operations per element; the state is a copy";
      r.outs = {{out, 1e-6, "FMA contraction: one ulp"}, {st, 0, "the state rows are copies: identical"}};
    }
  }
  // pointwise ops, in place (n = 1, odd, B C)
  struct Pw {
    const char* op;
    float lo, hi;
    double tol;
    const char* why;
  };
  for (const Pw& pw : {Pw{"tanh_", -6, 6, 1e-5, kPointwise}, Pw{"sigmoid_", -6, 6, 1e-5, kPointwise},
                       Pw{"relu_sq", -3, 3, 1e-6, "one fp32 product: FMA-free, at most one ulp"}})
    for (int64_t n : {int64_t(1), int64_t(1001), int64_t(13 * 256)}) {
      Row& r = row(pw.op, "n=" + S(n));
      const int x = r.f32("x", rnd(size_t(n), pw.lo, pw.hi));
      const std::string op = pw.op;
      r.run = [=](Backend& be, const Ptrs& p) {
        if (op == "tanh_")
          be.tanh_(P(p, x), n);
        else if (op == "sigmoid_")
          be.sigmoid_(P(p, x), n);
        else
          be.relu_sq(P(p, x), n);
      };
      r.ref = [=](const Ptrs& p) {
        if (op == "tanh_")
          ref::tanh_inplace(P(p, x), n);
        else if (op == "sigmoid_")
          ref::sigmoid_inplace(P(p, x), n);
        else
          ref::relu_sq_inplace(P(p, x), n);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> o(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; j++) {
          const double v = IN(in, x)[j];
          o[size_t(j)] = op == "tanh_"      ? std::tanh(v)
                         : op == "sigmoid_" ? sigm(v)
                                            : std::max(v, 0.0) * std::max(v, 0.0);
        }
        return F64{o};
      };
      r.tol64 = 1e-6, r.why64 = "libm tanhf/expf within an ulp or two, then at most 2 fp32 roundings";
      r.outs = {{x, pw.tol, pw.why}};
      r.flops = double(n);
    }
  // decay, sigmoid_bias, value_residual with shared and per-row vectors
  for (auto [B, Cc, per_row] : {std::tuple<int64_t, int64_t, bool>{1, 64, false}, {13, 256, false}, {7, 320, true}}) {
    const int64_t C = Cc, vs = per_row ? C : 0;
    const std::string shape = "B=" + S(B) + " C=" + S(C) + (per_row ? " vector per-row" : " vector shared");
    for (int which = 0; which < 2; which++) {
      Row& r = row(which ? "sigmoid_bias" : "decay", shape);
      const int x = r.f32("x", rnd(size_t(B * C), -3, 3)), v0 = r.f32("v0", rnd(size_t(per_row ? B * C : C), -3, 1));
      r.run = [=](Backend& be, const Ptrs& p) {
        if (which)
          be.sigmoid_bias(P(p, x), {P(p, v0), vs}, B, C);
        else
          be.decay(P(p, x), {P(p, v0), vs}, B, C);
      };
      r.ref = [=](const Ptrs& p) {
        if (which)
          ref::sigmoid_bias_rows(P(p, x), P(p, v0), vs, B, C);
        else
          ref::decay_rows(P(p, x), P(p, v0), vs, B, C);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> o(static_cast<size_t>(B * C));
        for (int64_t i = 0; i < B; i++)
          for (int64_t j = 0; j < C; j++) {
            const double s = sigm(double(IN(in, v0)[i * vs + j]) + IN(in, x)[i * C + j]);
            o[size_t(i * C + j)] = which ? s : std::exp(-std::exp(-0.5) * s);
          }
        return F64{o};
      };
      r.tol64 = 1e-6, r.why64 = "expf within an ulp, a few fp32 roundings";
      r.outs = {{x, 1e-5, kPointwise}};
    }
    Row& r = row("value_residual", shape);
    const int v = r.f32("v", rnd(size_t(B * C))), vf = r.f32("v_first", rnd(size_t(B * C))),
              t = r.f32("t", rnd(size_t(B * C), -3, 3)), v0 = r.f32("v0", rnd(size_t(per_row ? B * C : C)));
    r.run = [=](Backend& be, const Ptrs& p) { be.value_residual(P(p, v), P(p, vf), P(p, t), {P(p, v0), vs}, B, C); };
    r.ref = [=](const Ptrs& p) { ref::value_residual_rows(P(p, v), P(p, vf), P(p, t), P(p, v0), vs, B, C); };
    r.f64 = [=](const std::vector<Buf>& in) {
      std::vector<double> o(static_cast<size_t>(B * C));
      for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < C; j++) {
          const int64_t q = i * C + j;
          const double vv = IN(in, v)[q];
          o[size_t(q)] = vv + (IN(in, vf)[q] - vv) * sigm(double(IN(in, v0)[i * vs + j]) + IN(in, t)[q]);
        }
      return F64{o};
    };
    r.tol64 = 1e-6, r.why64 = "expf within an ulp, a few fp32 roundings";
    r.outs = {{v, 1e-5, kPointwise}};
  }
  // add, gathers
  for (int64_t n : {int64_t(1), int64_t(4099)}) {
    Row& r = row("add", "n=" + S(n));
    const int x = r.f32("x", rnd(size_t(n))), t = r.f32("t", rnd(size_t(n)));
    r.run = [=](Backend& be, const Ptrs& p) { be.add(P(p, x), P(p, t), n); };
    r.ref = [=](const Ptrs& p) { ref::add_inplace(P(p, x), P(p, t), n); };
    r.f64 = [=](const std::vector<Buf>& in) {
      std::vector<double> o(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; j++) o[size_t(j)] = double(IN(in, x)[j]) + IN(in, t)[j];
      return F64{o};
    };
    r.tol64 = 1e-7, r.why64 = "one fp32 rounding of the exact sum";
    r.outs = {{x, 0, "one IEEE addition: identical"}};
    r.flops = double(n);
  }
  for (auto [n, Cc, Bsrc] : {std::tuple<int64_t, int64_t, int64_t>{1, 64, 1}, {7, 256, 13}, {20, 100, 9}}) {
    const int64_t C = Cc;
    auto rows = rnd_int(size_t(n), 0, int32_t(Bsrc - 1));
    Row& r = row("gather_rows", "n=" + S(n) + " of " + S(Bsrc) + " rows, C=" + S(C) + " (logit-row subset)");
    const int src = r.f32("src", rnd(size_t(Bsrc * C))), ix = r.i32("rows", rows),
              dst = r.out("dst", T::F32, size_t(n * C));
    r.run = [=](Backend& be, const Ptrs& p) { be.gather_rows(P(p, src), P<int32_t>(p, ix), n, C, P(p, dst)); };
    r.ref = [=](const Ptrs& p) { ref::gather_rows(P(p, src), P<int32_t>(p, ix), n, C, P(p, dst)); };
    r.why64 = "a copy: nothing to compute in float64";
    r.outs = {{dst, 0, kExact}};
    Row& q = row("gather_i32", "n=" + S(n) + " of " + S(Bsrc));
    const int s2 = q.i32("src", rnd_int(size_t(Bsrc), -50, 50)), i2 = q.i32("idx", rows),
              d2 = q.out("dst", T::I32, size_t(n));
    q.run = [=](Backend& be, const Ptrs& p) {
      be.gather_i32(P<int32_t>(p, s2), P<int32_t>(p, i2), n, P<int32_t>(p, d2));
    };
    q.ref = [=](const Ptrs& p) { ref::gather_i32(P<int32_t>(p, s2), P<int32_t>(p, i2), n, P<int32_t>(p, d2)); };
    q.why64 = "a copy: nothing to compute in float64";
    q.outs = {{d2, 0, kExact}};
  }
}

// kk_prepare, wkv7 (3 tokens into the same states), group_norm_bonus_gate
void head_rows() {
  for (auto [B, H] : {std::pair<int64_t, int64_t>{1, 1}, {13, 4}, {5, 2}}) {
    const int64_t C = H * 64, n = B * C, Sl = 17, L = 3;
    const std::string shape = "B=" + S(B) + " H=" + S(H);
    {
      Row& r = row("kk_prepare", shape + " k_k shared, k_a per-row");
      const int k = r.f32("k", rnd(size_t(n))), a = r.f32("a", rnd(size_t(n), 0, 1)),
                kk_k = r.f32("k_k", rnd(size_t(C), 0.5, 1.5)), k_a = r.f32("k_a", rnd(size_t(n), 0, 1)),
                kk = r.out("kk", T::F32, size_t(n));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.kk_prepare(P(p, k), P(p, a), {P(p, kk_k), 0}, {P(p, k_a), C}, P(p, kk), B, H);
      };
      r.ref = [=](const Ptrs& p) { ref::kk_prepare(P(p, k), P(p, a), P(p, kk_k), 0, P(p, k_a), C, P(p, kk), B, H); };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> ko(static_cast<size_t>(n)), kko(static_cast<size_t>(n));
        for (int64_t i = 0; i < B; i++)
          for (int64_t h = 0; h < H; h++) {
            const int64_t o = i * C + h * 64;
            double nrm = 0;
            for (int j = 0; j < 64; j++) nrm += std::pow(double(IN(in, k)[o + j]) * IN(in, kk_k)[h * 64 + j], 2);
            nrm = std::max(std::sqrt(nrm), 1e-12);
            for (int j = 0; j < 64; j++) {
              kko[size_t(o + j)] = double(IN(in, k)[o + j]) * IN(in, kk_k)[h * 64 + j] / nrm;
              ko[size_t(o + j)] = IN(in, k)[o + j] * (1.0 + (IN(in, a)[o + j] - 1.0) * IN(in, k_a)[o + j]);
            }
          }
        return F64{ko, kko};
      };
      r.tol64 = 1e-6, r.why64 = "norm in double; a few fp32 roundings per element";
      r.outs = {{k, 1e-5, "k *= 1 + (a - 1) k_a: FMA contraction, a few ulp"}, {kk, 1e-5, kSums}};
    }
    {
      Row& r = row("wkv7", shape + " 3 tokens, slots permuted of 17, layer 1 of 3");
      auto slots = permutation(int32_t(Sl));
      slots.resize(size_t(B));
      const int st = r.f32("state", rnd(size_t(Sl * L * H * 4096), -0.5, 0.5)), sl = r.i32("slots", slots);
      int rr[3], dd[3], kk[3], vv[3], kn[3], aa[3], yy[3];
      for (int t = 0; t < 3; t++) {
        rr[t] = r.f32("r" + S(t), rnd(size_t(n))), dd[t] = r.f32("decay" + S(t), rnd(size_t(n), 0.545f, 1.f));
        kk[t] = r.f32("k" + S(t), rnd(size_t(n))), vv[t] = r.f32("v" + S(t), rnd(size_t(n)));
        auto kv = rnd(size_t(n));  // kk: unit vectors per head, as kk_prepare makes them
        for (int64_t o = 0; o < n; o += 64) {
          double s = 0;
          for (int j = 0; j < 64; j++) s += double(kv[size_t(o + j)]) * kv[size_t(o + j)];
          for (int j = 0; j < 64; j++) kv[size_t(o + j)] = float(kv[size_t(o + j)] / std::sqrt(s));
        }
        kn[t] = r.f32("kk" + S(t), kv), aa[t] = r.f32("a" + S(t), rnd(size_t(n), 0, 1));
        yy[t] = r.out("y" + S(t), T::F32, size_t(n));
      }
      const int64_t ss = L * H * 4096, lo = H * 4096;
      r.run = [=](Backend& be, const Ptrs& p) {
        for (int t = 0; t < 3; t++)
          be.wkv7(P(p, st), P<int32_t>(p, sl), ss, lo, P(p, rr[t]), P(p, dd[t]), P(p, kk[t]), P(p, vv[t]), P(p, kn[t]),
                  P(p, aa[t]), P(p, yy[t]), B, H);
      };
      r.ref = [=](const Ptrs& p) {
        for (int t = 0; t < 3; t++)
          ref::wkv7_rows(P(p, st), P<int32_t>(p, sl), ss, lo, P(p, rr[t]), P(p, dd[t]), P(p, kk[t]), P(p, vv[t]),
                         P(p, kn[t]), P(p, aa[t]), P(p, yy[t]), B, H);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> s(IN(in, st), IN(in, st) + Sl * ss);
        F64 res(4);
        for (int t = 0; t < 3; t++) {
          std::vector<double> y(static_cast<size_t>(n));
          for (int64_t i = 0; i < B; i++)
            for (int64_t h = 0; h < H; h++) {
              const int64_t o = i * C + h * 64;
              double* Sm = s.data() + int64_t(IN<int32_t>(in, sl)[i]) * ss + lo + h * 4096;
              for (int a = 0; a < 64; a++) {
                double sa = 0;
                for (int j = 0; j < 64; j++) sa -= Sm[j * 64 + a] * IN(in, kn[t])[o + j];  // S(a, j), stored [j][a]
                double acc = 0;
                for (int j = 0; j < 64; j++) {
                  double& e = Sm[j * 64 + a];
                  e = e * IN(in, dd[t])[o + j] + sa * (double(IN(in, kn[t])[o + j]) * IN(in, aa[t])[o + j]) +
                      double(IN(in, vv[t])[o + a]) * IN(in, kk[t])[o + j];
                  acc += e * IN(in, rr[t])[o + j];
                }
                y[size_t(o + a)] = acc;
              }
            }
          res[size_t(t)] = y;
        }
        res[3] = s;
        return F64{res[0], res[1], res[2], res[3]};
      };
      r.tol64 = 1e-5, r.why64 = "64-term fp32 dot products per state row, the state carried over 3 tokens";
      r.outs = {{yy[0], 1e-5, kSums}, {yy[1], 1e-5, kSums}, {yy[2], 1e-5, kSums}, {st, 1e-5, kSums}};
      r.flops = double(B * H * 64 * 64 * 6 * 3);
    }
    {
      Row& r = row("group_norm_bonus_gate", shape + " r_k shared, lw per-row, lb shared, eps 64e-5");
      const int y = r.f32("y", rnd(size_t(n), -2, 2)), rv = r.f32("r", rnd(size_t(n))), k = r.f32("k", rnd(size_t(n))),
                v = r.f32("v", rnd(size_t(n))), g = r.f32("g", rnd(size_t(n))), rk = r.f32("r_k", rnd(size_t(C))),
                lw = r.f32("lw", rnd(size_t(n))), lb = r.f32("lb", rnd(size_t(C)));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.group_norm_bonus_gate(P(p, y), P(p, rv), P(p, k), P(p, v), P(p, g), {P(p, rk), 0}, {P(p, lw), C},
                                 {P(p, lb), 0}, B, H, 64e-5f);
      };
      r.ref = [=](const Ptrs& p) {
        ref::group_norm_bonus_gate(P(p, y), P(p, rv), P(p, k), P(p, v), P(p, g), P(p, rk), 0, P(p, lw), C, P(p, lb), 0,
                                   B, H, 64e-5f);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> o(static_cast<size_t>(n));
        for (int64_t i = 0; i < B; i++)
          for (int64_t h = 0; h < H; h++) {
            const int64_t b = i * C + h * 64;
            double mu = 0, var = 0, bonus = 0;
            for (int j = 0; j < 64; j++) mu += IN(in, y)[b + j];
            mu /= 64;
            for (int j = 0; j < 64; j++) var += (IN(in, y)[b + j] - mu) * (IN(in, y)[b + j] - mu);
            var /= 64;
            for (int j = 0; j < 64; j++) bonus += double(IN(in, rv)[b + j]) * IN(in, k)[b + j] * IN(in, rk)[h * 64 + j];
            for (int j = 0; j < 64; j++) {
              const double yn = (IN(in, y)[b + j] - mu) / std::sqrt(var + double(64e-5f)) * IN(in, lw)[b + j] +
                                IN(in, lb)[h * 64 + j];
              o[size_t(b + j)] = (yn + bonus * IN(in, v)[b + j]) * IN(in, g)[b + j];
            }
          }
        return F64{o};
      };
      r.tol64 = 1e-5, r.why64 = "statistics in double; a 64-term fp32 bonus sum and a few fp32 roundings";
      r.outs = {{y, 1e-5, kSums}};
    }
  }
}

// y = W x / x P products: fp32 (unprepared, prepared panels, panels refreshed), bf16 weights
F64 linear64(const std::vector<Buf>& in, int W, int X, bool xp, bool bf, int64_t B, int64_t nin, int64_t nout) {
  std::vector<double> y(static_cast<size_t>(B * nout));
  for (int64_t i = 0; i < B; i++)
    for (int64_t o = 0; o < nout; o++) {
      double acc = 0;
      for (int64_t k = 0; k < nin; k++) {
        const double x = bf ? round_to_bf16(IN(in, X)[i * nin + k]) : IN(in, X)[i * nin + k];
        acc += x * in[size_t(W)].at(size_t(xp ? k * nout + o : o * nin + k));
      }
      y[size_t(i * nout + o)] = acc;
    }
  return F64{y};
}

NoiseSpec spec(int rank, NoiseDist dist);  // below, with the noise rows

void linear_rows(bool large) {
  struct Sh {
    int64_t B, in, out;
    bool xp;
  };
  std::vector<Sh> shapes = {{1, 256, 320, false},  {5, 100, 70, false},    {13, 256, 64, true},
                            {37, 256, 320, false}, {64, 96, 2048, true},   {7, 1024, 33, false},
                            {16, 64, 64, true},    {5, 1024, 4096, false}, {37, 256, 64, true},
                            {3, 77, 130, false},   {6, 513, 100, true},    {19, 513, 65, false}};  // odd in: a padded pair
  if (large) shapes = {{1024, 4096, 4096, false}, {1024, 4096, 14336, false}, {1024, 4096, 64, true}};
  for (const Sh& s : shapes)
    // 0 f32, 1 f32 prepared, 2 f32 prepared then refreshed, 3 bf16, 4 bf16 prepared (the CPU's
    // panels), 5 bf16 prepared, then updated: new bf16 bits written (as the update ops do) and
    // the prepared form refreshed from the fp32 master values (as BackendModel::refresh does)
    for (int mode = 0; mode < 6; mode++) {
      if (s.xp && (mode == 1 || mode == 2)) continue;  // fp32 panels are for y = W x only
      if (large && (mode == 1 || mode == 2 || mode == 5)) continue;
      const bool bf = mode >= 3;
      const char* mname[] = {"f32", "f32 prepared", "f32 prepared+refreshed", "bf16", "bf16 prepared",
                             "bf16 prepared+refreshed"};
      Row& r = row("linear", std::string(mname[mode]) + " B=" + S(s.B) + " " + S(s.in) + "->" + S(s.out) +
                                 (s.xp ? " (x P)" : " (W x)"));
      const auto wv = rnd(size_t(s.in * s.out));
      const int W = bf ? r.add("W", T::BF16, to_bf16(wv)) : r.f32("W", wv), X = r.f32("X", rnd(size_t(s.B * s.in))),
                Y = r.out("Y", T::F32, size_t(s.B * s.out));
      const auto wn = rnd(size_t(s.in * s.out));
      const int W2 = mode == 2 || mode == 5 ? r.f32("W_new", wn) : -1;
      const int W2b = mode == 5 ? r.add("W_new_bits", T::BF16, to_bf16(wn)) : -1;
      const Sh sh = s;
      r.run = [=](Backend& be, const Ptrs& p) {
        WeightView w{p[size_t(W)], bf ? DType::BF16 : DType::F32, sh.xp ? sh.in : sh.out, sh.xp ? sh.out : sh.in};
        if (mode == 1 || mode == 2 || mode == 4 || mode == 5) w.prepared = be.prepare_weight(w, sh.xp);
        if (mode == 2) {  // new values, then the prepared form refreshed
          be.copy(p[size_t(W)], p[size_t(W2)], size_t(sh.in * sh.out) * 4);
          be.refresh_prepared(w.prepared, w);
        }
        if (mode == 5) {
          be.copy(p[size_t(W)], p[size_t(W2b)], size_t(sh.in * sh.out) * 2);
          WeightView master = w;
          master.data = p[size_t(W2)], master.dtype = DType::F32;
          be.refresh_prepared(w.prepared, master);
        }
        be.linear(w, sh.xp, P(p, X), P(p, Y), sh.B);
        be.release_prepared(w.prepared);
      };
      r.ref = [=](const Ptrs& p) {
        if (bf)
          ref::linear_bf16(P<uint16_t>(p, mode == 5 ? W2b : W), sh.xp, P(p, X), P(p, Y), sh.B, sh.in, sh.out);
        else
          ref::linear_f32(mode == 2 ? P(p, W2) : P(p, W), sh.xp, P(p, X), P(p, Y), sh.B, sh.in, sh.out);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        return linear64(in, mode == 2 ? W2 : mode == 5 ? W2b : W, X, sh.xp, bf, sh.B, sh.in, sh.out);
      };
      r.tol64 = 2e-5, r.why64 =
                          "fp32 accumulation over <= 1024 terms (bf16: X rounded to bf16 as the reference "
                          "defines, then exact bf16 products summed in pairs, core/gemm_bf16.h)";
      r.outs = {{Y, 1e-5,
                 bf ? "cuBLAS bf16 x bf16 products are exact in fp32; only the fp32 accumulation order "
                      "differs (the reference rounds X to bf16 as the device does)"
                    : "cuBLAS fp32 (no TF32): a different accumulation order"}};
      r.flops = 2.0 * double(s.B * s.in * s.out);
    }
  if (large) return;
  // linear_group: the step's groups in small (x P products on bf16 panels, as the LoRA paths;
  // W x ones, one with several k blocks; an fp32 one that the CPU runs alone), each as linear()
  // gives it; then with the products' low-rank corrections (EGGROLL), regenerated and cached, each
  // as linear() and then lowrank_add() give it: rank 1 on bf16 panels (the CPU adds those in the
  // GEMM's epilogue), rank 2 (added after the products), rank 1 on the fp32 product; members in
  // pairs, a pair's two rows side by side and apart
  struct G {
    int64_t in, out;
    bool xp, bf;
    int rank;
  };
  const std::vector<G> gs = {{96, 64, true, true, 1},    {96, 130, true, true, 2}, {96, 32, true, true, 1},
                             {77, 130, false, true, 1},  {300, 130, false, true, 1}, {40, 24, false, false, 1}};
  const char* modes[] = {"", " + low-rank regenerated", " + low-rank cached"};
  for (int64_t B : {int64_t(1), int64_t(9)})
    for (int mode = 0; mode < 3; mode++) {
      const bool lowrank = mode > 0, cached = mode == 2;
      const int64_t pairs = 6;
      std::string name = "B=" + S(B);
      name += modes[mode];
      name += ": 5 bf16 prepared (3 x P r=1,2,1; 2 W x r=1) + 1 f32 W x (r=1)";
      Row& r = row("linear_group", name);
      auto members = rnd_int(size_t(B), 0, int32_t(2 * pairs - 1));
      if (B > 1) members[1] = members[0] ^ 1, members[size_t(B - 1)] = members[0];
      const int mem = r.i32("members", members);
      std::vector<NoiseSpec> ns;
      std::vector<int> Ws, Xs, Ys, Cs;
      auto named = [](const char* what, size_t i) {  // (appending: "W" + S(i) trips GCC 12's -Wrestrict here)
        std::string n = what;
        n += S(int64_t(i));
        return n;
      };
      for (size_t i = 0; i < gs.size(); i++) {
        const G& g = gs[i];
        ns.push_back(spec(g.rank, NoiseDist::Gaussian));
        const auto wv = rnd(size_t(g.in * g.out));
        Ws.push_back(g.bf ? r.add(named("W", i), T::BF16, to_bf16(wv)) : r.f32(named("W", i), wv));
        Xs.push_back(r.f32(named("X", i), rnd(size_t(B * g.in))));
        Ys.push_back(r.out(named("Y", i), T::F32, size_t(B * g.out)));
        const int64_t len = (g.in + g.out) * g.rank;
        std::vector<float> cache(cached ? size_t(pairs * len) : size_t(1), 0.f);
        if (cached) ref::fill_noise_cache(ns.back(), uint32_t(30 + i), len, pairs, cache.data());
        Cs.push_back(r.f32(named("cache", i), cache));
      }
      r.run = [=](Backend& be, const Ptrs& p) {
        std::vector<WeightView> w;
        std::vector<LowRankArg> lr;
        for (size_t i = 0; i < gs.size(); i++) {
          w.push_back({p[size_t(Ws[i])], gs[i].bf ? DType::BF16 : DType::F32, gs[i].xp ? gs[i].in : gs[i].out,
                       gs[i].xp ? gs[i].out : gs[i].in});
          if (gs[i].bf) w.back().prepared = be.prepare_weight(w.back(), gs[i].xp);
          lr.push_back({&ns[i], uint32_t(30 + i), P<int32_t>(p, mem), cached ? P(p, Cs[i]) : nullptr});
        }
        std::vector<LinearItem> items;
        for (size_t i = 0; i < gs.size(); i++)
          items.push_back({&w[i], gs[i].xp, P(p, Xs[i]), P(p, Ys[i]), lowrank ? &lr[i] : nullptr});
        be.linear_group(items.data(), int(items.size()), B);
        for (auto& v : w) be.release_prepared(v.prepared);
      };
      r.ref = [=](const Ptrs& p) {
        for (size_t i = 0; i < gs.size(); i++) {
          const G& g = gs[i];
          if (g.bf)
            ref::linear_bf16(P<uint16_t>(p, Ws[i]), g.xp, P(p, Xs[i]), P(p, Ys[i]), B, g.in, g.out);
          else
            ref::linear_f32(P(p, Ws[i]), g.xp, P(p, Xs[i]), P(p, Ys[i]), B, g.in, g.out);
          if (lowrank)
            ref::lowrank_add(ns[i], uint32_t(30 + i), g.xp ? g.in : g.out, g.xp ? g.out : g.in, g.xp, P(p, Xs[i]),
                             P(p, Ys[i]), P<int32_t>(p, mem), B, cached ? P(p, Cs[i]) : nullptr);
        }
      };
      if (lowrank) {
        r.why64 = "linear and lowrank_add: their own rows check each part against float64";
      } else {
        r.f64 = [=](const std::vector<Buf>& in) {
          F64 all;
          for (size_t i = 0; i < gs.size(); i++)
            all.push_back(linear64(in, Ws[i], Xs[i], gs[i].xp, gs[i].bf, B, gs[i].in, gs[i].out)[0]);
          return all;
        };
        r.tol64 = 2e-5, r.why64 = "fp32 accumulation over <= 300 terms (bf16: X rounded to bf16 first)";
      }
      for (size_t i = 0; i < gs.size(); i++)
        r.outs.push_back({Ys[i], 1e-5, lowrank ? "as linear and lowrank_add: cuBLAS's accumulation order differs"
                                                : "as linear: cuBLAS's accumulation order differs"});
      r.flops = 0;
      for (const G& g : gs) r.flops += 2.0 * double(B * g.in * g.out);
    }
}

NoiseSpec spec(int rank, NoiseDist dist) {
  NoiseSpec ns;
  ns.seed = 99, ns.epoch_bucket = 4, ns.rank = rank, ns.dist = dist, ns.sigma = 0.03f;
  return ns;
}
std::vector<float> factors(const NoiseSpec& ns, uint32_t pid, uint32_t member, int64_t len) {
  std::vector<float> f(static_cast<size_t>(len));
  fill_noise(noise_spec_key(ns, pid, member), ns.dist, 0, size_t(len), f.data());
  return f;
}
const char* dname(NoiseDist d) { return d == NoiseDist::Gaussian ? "gauss" : "rad"; }

void noise_rows(bool large) {
  const uint32_t pid = 21;
  struct Sh {
    int64_t m, n, B;
    int rank;
    NoiseDist dist;
  };
  std::vector<Sh> shapes = {{130, 77, 9, 1, NoiseDist::Gaussian},
                            {130, 77, 9, 3, NoiseDist::Rademacher},
                            {64, 64, 1, 1, NoiseDist::Gaussian},
                            {33, 200, 7, 16, NoiseDist::Gaussian},
                            {256, 96, 16, 2, NoiseDist::Gaussian}};
  if (large) shapes = {{4096, 4096, 1024, 1, NoiseDist::Gaussian}, {14336, 4096, 1024, 1, NoiseDist::Gaussian}};
  for (const Sh& s : shapes) {
    const NoiseSpec ns = spec(s.rank, s.dist);
    const int64_t m = s.m, n = s.n, B = s.B, len = (m + n) * s.rank, pairs = 6;
    const std::string tag = " r=" + S(s.rank) + " " + dname(s.dist);
    std::vector<float> cache(size_t(pairs * len));
    ref::fill_noise_cache(ns, pid, len, pairs, cache.data());
    auto members = rnd_int(size_t(B), 0, int32_t(2 * pairs - 1));
    if (B > 1) members[1] = members[0] ^ 1;  // both signs of a pair
    {
      Row& r = row("fill_noise_cache", "len=" + S(len) + " pairs=" + S(pairs) + tag);
      const int out = r.out("cache", T::F32, size_t(pairs * len));
      r.run = [=](Backend& be, const Ptrs& p) { be.fill_noise_cache(ns, pid, len, pairs, P(p, out)); };
      r.ref = [=](const Ptrs& p) { ref::fill_noise_cache(ns, pid, len, pairs, P(p, out)); };
      r.why64 = "defined by its fp32 formula (Philox words: test_philox's known answers)";
      r.outs = {{out, 0.0,
                 s.dist == NoiseDist::Rademacher ? "signs of identical Philox words: identical"
                                                 : "identical Philox words, our own log/sin/cos: identical"}};
    }
    for (bool xp : {false, true})
      for (bool cached : {false, true}) {
        if (large && cached) continue;
        const int64_t in = xp ? m : n, out = xp ? n : m;
        Row& r = row("lowrank_add", std::string(xp ? "x P" : "W x") + (cached ? " cached" : " regenerated") +
                                        " m=" + S(m) + " n=" + S(n) + " B=" + S(B) + tag);
        const int X = r.f32("X", rnd(size_t(B * in))), Y = r.f32("Y", rnd(size_t(B * out))),
                  mem = r.i32("members", members), ca = r.f32("cache", cached ? cache : std::vector<float>{0.f});
        r.run = [=](Backend& be, const Ptrs& p) {
          be.lowrank_add(ns, pid, m, n, xp, P(p, X), P(p, Y), P<int32_t>(p, mem), B, cached ? P(p, ca) : nullptr);
        };
        r.ref = [=](const Ptrs& p) {
          ref::lowrank_add(ns, pid, m, n, xp, P(p, X), P(p, Y), P<int32_t>(p, mem), B, cached ? P(p, ca) : nullptr);
        };
        r.f64 = [=](const std::vector<Buf>& bin) {
          std::vector<double> y(IN(bin, Y), IN(bin, Y) + B * out);
          for (int64_t i = 0; i < B; i++) {
            const uint32_t me = uint32_t(IN<int32_t>(bin, mem)[i]);
            const auto F = factors(ns, pid, me, len);
            const float* In = xp ? F.data() : F.data() + m * s.rank;
            const float* Ou = xp ? F.data() + m * s.rank : F.data();
            const double c = member_sign(me) * double(ns.sigma) / std::sqrt(double(s.rank));
            for (int q = 0; q < s.rank; q++) {
              double t = 0;
              for (int64_t k = 0; k < in; k++) t += double(IN(bin, X)[i * in + k]) * In[k * s.rank + q];
              for (int64_t o = 0; o < out; o++) y[size_t(i * out + o)] += c * t * Ou[o * s.rank + q];
            }
          }
          return F64{y};
        };
        r.tol64 = 1e-5, r.why64 = "16 interleaved fp32 partial sums over in, then an r-term fp32 sum";
        r.outs = {{Y, 1e-5, kSums, Y}};
        r.flops = 2.0 * double(B * (in + out) * s.rank);
      }
    if (large) continue;
    {
      const bool cached = s.rank != 1;
      Row& r = row("embedding_lowrank_add",
                   std::string(cached ? "cached" : "regenerated") + " V=" + S(m) + " C=" + S(n) + " B=" + S(B) + tag);
      auto tok = rnd_int(size_t(B), 0, int32_t(m - 1));
      tok[0] = int32_t(m - 1);
      const int X = r.f32("X", rnd(size_t(B * n))), tk = r.i32("tokens", tok), mem = r.i32("members", members),
                ca = r.f32("cache", cached ? cache : std::vector<float>{0.f});
      r.run = [=](Backend& be, const Ptrs& p) {
        be.embedding_lowrank_add(ns, pid, m, n, P<int32_t>(p, tk), P(p, X), P<int32_t>(p, mem), B,
                                 cached ? P(p, ca) : nullptr);
      };
      r.ref = [=](const Ptrs& p) {
        ref::embedding_lowrank_add(ns, pid, m, n, P<int32_t>(p, tk), P(p, X), P<int32_t>(p, mem), B,
                                   cached ? P(p, ca) : nullptr);
      };
      r.f64 = [=](const std::vector<Buf>& bin) {
        std::vector<double> x(IN(bin, X), IN(bin, X) + B * n);
        for (int64_t i = 0; i < B; i++) {
          const uint32_t me = uint32_t(IN<int32_t>(bin, mem)[i]);
          const auto F = factors(ns, pid, me, len);
          const double c = member_sign(me) * double(ns.sigma) / std::sqrt(double(s.rank));
          const int64_t t = IN<int32_t>(bin, tk)[i];
          for (int64_t o = 0; o < n; o++)
            for (int q = 0; q < s.rank; q++)
              x[size_t(i * n + o)] += c * double(F[size_t(m * s.rank + o * s.rank + q)]) * F[size_t(t * s.rank + q)];
        }
        return F64{x};
      };
      r.tol64 = 1e-4, r.why64 =
                          "an r-term fp32 sum per element, then the fp32 add into X: |X| ~ 1 rounds at ~6e-8, "
                          "measured against changes of ~1e-3";
      r.outs = {{X, 1e-5, kSums, X}};
    }
    {
      const bool cached = s.rank == 1;
      const int64_t vn = n;
      std::vector<float> vcache(size_t(pairs * vn));
      ref::fill_noise_cache(ns, pid, vn, pairs, vcache.data());
      Row& r = row("vector_noise", std::string(cached ? "cached" : "regenerated") + " n=" + S(vn) + " B=" + S(B) + tag);
      const int base = r.f32("base", rnd(size_t(vn))), mem = r.i32("members", members),
                ca = r.f32("cache", cached ? vcache : std::vector<float>{0.f}),
                out = r.out("out", T::F32, size_t(B * vn));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.vector_noise(ns, pid, P(p, base), vn, P<int32_t>(p, mem), B, cached ? P(p, ca) : nullptr, P(p, out));
      };
      r.ref = [=](const Ptrs& p) {
        ref::vector_noise_rows(ns, pid, P(p, base), vn, P<int32_t>(p, mem), B, cached ? P(p, ca) : nullptr, P(p, out));
      };
      r.f64 = [=](const std::vector<Buf>& bin) {
        std::vector<double> o(static_cast<size_t>(B * vn));
        for (int64_t i = 0; i < B; i++) {
          const uint32_t me = uint32_t(IN<int32_t>(bin, mem)[i]);
          const auto e = factors(ns, pid, me, vn);
          for (int64_t j = 0; j < vn; j++)
            o[size_t(i * vn + j)] = IN(bin, base)[j] + member_sign(me) * double(ns.sigma) * e[size_t(j)];
        }
        return F64{o};
      };
      r.tol64 = 1e-6, r.why64 = "one fp32 product and sum";
      r.outs = {{out, 1e-5, "identical noise; base + c eps may be one fused multiply-add on one side"}};
    }
  }
}

// update operands, update GEMM, vector gradients, the composite against the explicit sum of f_i E_i
void update_rows(bool large) {
  const uint32_t pid = 21;
  const int64_t N = 12;
  std::vector<float> fit = rnd(size_t(N), -2, 2);
  fit[2] = fit[3];  // a pair with zero coefficient
  auto coefs = [=](const NoiseSpec& ns, int64_t p0, int64_t np) {
    std::vector<double> c(static_cast<size_t>(np));
    for (int64_t k = 0; k < np; k++)
      c[size_t(k)] =
          (double(fit[size_t(2 * (p0 + k))]) - fit[size_t(2 * (p0 + k) + 1)]) * ns.sigma / std::sqrt(double(N));
    return c;
  };
  if (!large)
    for (auto [m, n, rank, p0, np, cached] :
         {std::tuple<int64_t, int64_t, int, int64_t, int64_t, bool>{130, 77, 1, 0, 6, false},
          {130, 77, 3, 0, 6, true},
          {33, 200, 2, 1, 3, false},
          {1, 64, 1, 5, 1, true}}) {
      const NoiseSpec ns = spec(rank, rank == 3 ? NoiseDist::Rademacher : NoiseDist::Gaussian);
      const int64_t len = (m + n) * rank, K = np * rank, pairs = N / 2;
      std::vector<float> cache(size_t(pairs * len));
      ref::fill_noise_cache(ns, pid, len, pairs, cache.data());
      const std::string shape = "m=" + S(m) + " n=" + S(n) + " r=" + S(rank) + " pairs [" + S(p0) + ", " + S(p0 + np) +
                                ") of " + S(pairs) + (cached ? " cached " : " regenerated ") + dname(ns.dist);
      {
        Row& r = row("update_factors", shape);
        const int f = r.f32("fitness", fit), ca = r.f32("cache", cache), A = r.out("A_all", T::F32, size_t(m * K)),
                  Bm = r.out("B_all", T::F32, size_t(n * K));
        r.run = [=](Backend& be, const Ptrs& p) {
          be.update_factors(ns, pid, m, n, P(p, f), N, p0, np, cached ? P(p, ca) : nullptr, P(p, A), P(p, Bm));
        };
        r.ref = [=](const Ptrs& p) {
          ref::update_factors(ns, pid, m, n, P(p, f), N, p0, np, cached ? P(p, ca) : nullptr, P(p, A), P(p, Bm));
        };
        r.f64 = [=](const std::vector<Buf>&) {
          std::vector<double> a(static_cast<size_t>(m * K)), b(static_cast<size_t>(n * K));
          const auto c = coefs(ns, p0, np);
          for (int64_t k = 0; k < np; k++) {
            const auto F = factors(ns, pid, uint32_t(2 * (p0 + k)), len);
            for (int64_t o = 0; o < m; o++)
              for (int q = 0; q < rank; q++)
                a[size_t(o * K + k * rank + q)] = c[size_t(k)] / std::sqrt(double(rank)) * F[size_t(o * rank + q)];
            for (int64_t j = 0; j < n; j++)
              for (int q = 0; q < rank; q++) b[size_t(j * K + k * rank + q)] = F[size_t(m * rank + j * rank + q)];
          }
          return F64{a, b};
        };
        r.tol64 = 3e-7, r.why64 = "the fitness difference and the coefficient rounded to fp32, one fp32 product";
        r.outs = {{A, 0.0, "identical noise (our own log/sin/cos), one fp32 product: identical"},
                  {Bm, 0.0, "identical noise (our own log/sin/cos): identical"}};
      }
      {
        const int64_t vn = n;
        std::vector<float> vcache(size_t(pairs * vn));
        ref::fill_noise_cache(ns, pid, vn, pairs, vcache.data());
        Row& r = row("vector_gradient", "n=" + S(vn) + " pairs [" + S(p0) + ", " + S(p0 + np) + ") of " + S(pairs) +
                                            (cached ? " cached " : " regenerated ") + dname(ns.dist));
        const int f = r.f32("fitness", fit), ca = r.f32("cache", vcache), g = r.out("g", T::F32, size_t(vn));
        r.run = [=](Backend& be, const Ptrs& p) {
          be.vector_gradient(ns, pid, vn, P(p, f), N, p0, np, cached ? P(p, ca) : nullptr, P(p, g));
        };
        r.ref = [=](const Ptrs& p) {
          ref::vector_gradient(ns, pid, vn, P(p, f), N, p0, np, cached ? P(p, ca) : nullptr, P(p, g));
        };
        r.f64 = [=](const std::vector<Buf>&) {
          std::vector<double> g64(static_cast<size_t>(vn), 0.0);
          const auto c = coefs(ns, p0, np);
          for (int64_t k = 0; k < np; k++) {
            const auto e = factors(ns, pid, uint32_t(2 * (p0 + k)), vn);
            for (int64_t j = 0; j < vn; j++) g64[size_t(j)] += c[size_t(k)] * e[size_t(j)];
          }
          return F64{g64};
        };
        r.tol64 = 1e-6, r.why64 = "<= 6 fp32 products and sums per element";
        r.outs = {{g, 1e-5, "identical noise; the products and sums may be fused multiply-adds on one side"}};
      }
    }
  std::vector<std::tuple<int64_t, int64_t, int64_t>> gemms = {{200, 150, 48}, {1, 7, 1}, {130, 77, 3}, {64, 1000, 17}};
  if (large) gemms = {{4096, 4096, 512}, {14336, 4096, 512}};
  for (auto [m, n, K] : gemms) {
    Row& r = row("update_gemm", "m=" + S(m) + " n=" + S(n) + " K=" + S(K));
    const int A = r.f32("A_all", rnd(size_t(m * K))), Bm = r.f32("B_all", rnd(size_t(n * K))),
              G = r.out("G", T::F32, size_t(m * n));
    r.run = [=](Backend& be, const Ptrs& p) { be.update_gemm(P(p, A), P(p, Bm), P(p, G), m, n, K); };
    r.ref = [=](const Ptrs& p) { ref::update_gemm(P(p, A), P(p, Bm), P(p, G), m, n, K); };
    r.f64 = [=](const std::vector<Buf>& in) {
      std::vector<double> g(static_cast<size_t>(m * n));
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
          double acc = 0;
          for (int64_t k = 0; k < K; k++) acc += double(IN(in, A)[i * K + k]) * IN(in, Bm)[j * K + k];
          g[size_t(i * n + j)] = acc;
        }
      return F64{g};
    };
    r.tol64 = 1e-5, r.why64 = "fp32 accumulation over K terms";
    r.outs = {{G, 1e-5, "cuBLAS fp32: a different accumulation order"}};
    r.flops = 2.0 * double(m * n * K);
  }
  if (large) return;
  // update_factors + update_gemm of a real model matrix against the explicit sum of f_i E_i
  {
    static const Model mdl = [] {
      ModelConfig c = ModelConfig::preset("tiny", 97);
      c.n_layer = 2;
      return Model::random(c, 5);
    }();
    const int p = mdl.layers[1].ffn_key;
    const Param& Pm = mdl.params[size_t(p)];
    NoiseConfig nc;
    nc.seed = 8, nc.rank = 2, nc.sigma = 0.02f;
    const std::vector<float> f8 = {0.5f, -1.f, 2.f, 0.25f, -0.75f, 1.5f, 0.f, -2.f};
    NoiseSpec ns;
    ns.seed = nc.seed, ns.epoch_bucket = epoch_bucket(3, nc.noise_reuse), ns.rank = nc.rank, ns.dist = nc.dist,
    ns.sigma = nc.sigma;
    const int64_t M = Pm.rows, Nn = Pm.cols, K = 4 * nc.rank;
    Row& r = row("update_factors+update_gemm", "ffn.key of layer 1 (" + S(M) + "x" + S(Nn) + ") r=2, 8 members");
    const int f = r.f32("fitness", f8), A = r.out("A_all", T::F32, size_t(M * K)),
              Bm = r.out("B_all", T::F32, size_t(Nn * K)), G = r.out("G", T::F32, size_t(M * Nn));
    r.run = [=](Backend& be, const Ptrs& q) {
      be.update_factors(ns, uint32_t(p), M, Nn, P(q, f), 8, 0, 4, nullptr, P(q, A), P(q, Bm));
      be.update_gemm(P(q, A), P(q, Bm), P(q, G), M, Nn, K);
    };
    r.ref = [=](const Ptrs& q) {
      ref::update_factors(ns, uint32_t(p), M, Nn, f8.data(), 8, 0, 4, nullptr, P(q, A), P(q, Bm));
      ref::update_gemm(P(q, A), P(q, Bm), P(q, G), M, Nn, K);
    };
    // float64: g = (1/sqrt(N)) sum_i f_i E_i written out, E_i = s_i sigma A_i B_i^T / sqrt(r)
    // from the members' noise factors (the update the engine applies); A_all and B_all as the
    // update_factors rows build them
    r.f64 = [=](const std::vector<Buf>&) {
      const int rank = nc.rank;
      const int64_t len = (M + Nn) * rank;
      std::vector<double> g(size_t(M * Nn), 0.0), a(size_t(M * K)), b(size_t(Nn * K));
      for (uint32_t i = 0; i < 8; i++) {
        const auto F = factors(ns, uint32_t(p), i, len);  // members 2k and 2k + 1 share factors
        const double c = (i % 2 ? -1.0 : 1.0) * double(nc.sigma) / std::sqrt(double(rank)) * f8[i] / std::sqrt(8.0);
        for (int64_t o = 0; o < M; o++)
          for (int64_t j = 0; j < Nn; j++) {
            double ab = 0;
            for (int q = 0; q < rank; q++) ab += double(F[size_t(o * rank + q)]) * F[size_t((M + j) * rank + q)];
            g[size_t(o * Nn + j)] += c * ab;
          }
        if (i % 2) continue;
        const int64_t k = i / 2;
        const double coef = (double(f8[i]) - f8[i + 1]) * nc.sigma / std::sqrt(8.0 * rank);
        for (int64_t o = 0; o < M; o++)
          for (int q = 0; q < rank; q++) a[size_t(o * K + k * rank + q)] = coef * F[size_t(o * rank + q)];
        for (int64_t j = 0; j < Nn; j++)
          for (int q = 0; q < rank; q++) b[size_t(j * K + k * rank + q)] = F[size_t((M + j) * rank + q)];
      }
      return F64{g, a, b};
    };
    r.tol64 = 1e-6, r.why64 = "the coefficients rounded to fp32, fp32 products summed over K = 8";
    r.outs = {{G, 1e-5, "regenerated factors (ulps) and cuBLAS accumulation order"},
              {A, 1e-5, "as update_factors"},
              {Bm, 1e-5, "as update_factors"}};
  }
}

// The bf16 copy an optimizer writes must be round(w) of the w it wrote, bit for bit.
std::string bf16_copy_check(const std::vector<Buf>& got, int w, int b16) {
  const float* x = IN(got, w);
  const uint16_t* b = IN<uint16_t>(got, b16);
  for (size_t j = 0; j < got[size_t(w)].n(); j++)
    if (b[j] != f32_to_bf16(x[j]))
      return "w_bf16[" + S(int64_t(j)) + "] = " + S(b[j]) + " is not round(w) = " + S(f32_to_bf16(x[j]));
  return "";
}

// sum_squares, sgd_update, adam_update (reductions: out[0] of reduce_doubles() doubles)
void optimizer_rows(bool large) {
  for (int64_t n : large ? std::vector<int64_t>{int64_t(1) << 26} : std::vector<int64_t>{1, 65537, 100003}) {
    {
      Row& r = row("sum_squares", "n=" + S(n));
      const int x = r.f32("x", rnd(size_t(n))), out = r.out("out", T::F64, 1 + 1024 + 8);
      r.run = [=](Backend& be, const Ptrs& p) { be.sum_squares(P(p, x), n, P<double>(p, out)); };
      r.ref = [=](const Ptrs& p) { P<double>(p, out)[0] = ref::sum_squares(P(p, x), n); };
      r.f64 = [=](const std::vector<Buf>& in) {
        double s = 0;
        for (int64_t j = 0; j < n; j++) s += double(IN(in, x)[j]) * IN(in, x)[j];
        return F64{{s}};
      };
      r.tol64 = 1e-12, r.why64 = "double sums in another order";
      r.outs = {{out, 1e-12, "double sums over a fixed grid in another order", -1, 1}};
      r.flops = 2.0 * double(n);
    }
    for (bool bf : {false, true}) {
      Row& r = row("sgd_update", "n=" + S(n) + (bf ? " with bf16 copy" : ""));
      const double lr = 0.125, sc = 0.7;
      const int w = r.f32("w", rnd(size_t(n))), g = r.f32("g", rnd_away(size_t(n))),
                out = r.out("out", T::F64, 1 + 1024 + 8), b16 = r.out("w_bf16", T::BF16, size_t(n));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.sgd_update(P(p, w), P(p, g), n, lr, sc, P<double>(p, out), bf ? P<uint16_t>(p, b16) : nullptr);
      };
      r.ref = [=](const Ptrs& p) {
        P<double>(p, out)[0] = ref::sgd_update(P(p, w), P(p, g), n, lr, sc);
        if (bf)
          for (int64_t j = 0; j < n; j++) P<uint16_t>(p, b16)[j] = f32_to_bf16(P(p, w)[j]);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> wn(static_cast<size_t>(n)), bb(static_cast<size_t>(n));
        double sq = 0;
        for (int64_t j = 0; j < n; j++) {
          const double w0 = IN(in, w)[j], w1 = w0 + lr * double(IN(in, g)[j]) * sc;
          wn[size_t(j)] = w1;
          sq += (double(float(w1)) - w0) * (double(float(w1)) - w0);
          bb[size_t(j)] = w1;
        }
        return bf ? F64{wn, {sq}, bb} : F64{wn, {sq}};
      };
      r.tol64 = 2e-6, r.why64 =
                          "w rounded to fp32 once: half an ulp of |w| <= 1 (3e-8) against changes of 0.04-0.09 "
                          "(bf16 copy: half a bf16 ulp, at most 2^-8 relative)";
      r.outs = {{w, 2e-6, "FMA contraction may move w by an ulp (6e-8) against changes of 0.04-0.09", w},
                {out, 1e-5, "|dW|^2 over changes that may differ by an ulp", -1, 1}};
      if (bf)
        r.outs.push_back({b16, 8e-3,
                          "round(w): w may differ by an ulp and round to the neighbouring bf16 (2^-7 relative)", -1, 0,
                          4e-3});
      if (bf) r.self_check = [=](const std::vector<Buf>& got) { return bf16_copy_check(got, w, b16); };
      r.flops = 3.0 * double(n);
    }
    for (bool adamw : {false, true}) {
      Row& r = row("adam_update", std::string(adamw ? "adamw" : "adam") + " n=" + S(n) + " step 3, wd 0.01" +
                                      (adamw ? " with bf16 copy" : ""));
      const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01, bc1 = 1 - std::pow(b1, 3.0),
                   bc2 = 1 - std::pow(b2, 3.0), sc = 0.8;
      const int w = r.f32("w", rnd(size_t(n))), g = r.f32("g", rnd_away(size_t(n))),
                m1 = r.f32("m1", rnd(size_t(n), -0.01f, 0.01f)), m2 = r.f32("m2", rnd(size_t(n), 0, 1e-4f)),
                out = r.out("out", T::F64, 1 + 1024 + 8), b16 = r.out("w_bf16", T::BF16, size_t(n));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.adam_update(P(p, w), P(p, g), P(p, m1), P(p, m2), n, lr, b1, b2, eps, wd, adamw, bc1, bc2, sc,
                       P<double>(p, out), adamw ? P<uint16_t>(p, b16) : nullptr);
      };
      r.ref = [=](const Ptrs& p) {
        P<double>(p, out)[0] =
            ref::adam_update(P(p, w), P(p, g), P(p, m1), P(p, m2), n, lr, b1, b2, eps, wd, adamw, bc1, bc2, sc);
        if (adamw)
          for (int64_t j = 0; j < n; j++) P<uint16_t>(p, b16)[j] = f32_to_bf16(P(p, w)[j]);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> wn(static_cast<size_t>(n)), mm(static_cast<size_t>(n)), vv(static_cast<size_t>(n));
        double sq = 0;
        for (int64_t j = 0; j < n; j++) {
          const double w0 = IN(in, w)[j];
          double gj = double(IN(in, g)[j]) * sc;
          if (!adamw) gj -= wd * w0;
          mm[size_t(j)] = b1 * IN(in, m1)[j] + (1 - b1) * gj;
          vv[size_t(j)] = b2 * IN(in, m2)[j] + (1 - b2) * gj * gj;
          double d = lr * (mm[size_t(j)] / bc1) / (std::sqrt(vv[size_t(j)] / bc2) + eps);
          if (adamw) d -= lr * wd * w0;
          wn[size_t(j)] = w0 + d;
          sq += (double(float(w0 + d)) - w0) * (double(float(w0 + d)) - w0);
        }
        return adamw ? F64{wn, mm, vv, {sq}, wn} : F64{wn, mm, vv, {sq}};
      };
      r.tol64 = 2e-5;
      r.why64 =
          "w rounded to fp32 once: half an ulp of |w| <= 1 (6e-8) against changes up to lr = 0.01; moments "
          "rounded to fp32 (bf16 copy: half a bf16 ulp, at most 2^-8 relative)";
      r.outs = {{w, 2e-5, "FMA contraction may move w by an ulp (6e-8) against changes up to lr = 0.01", w},
                {m1, 1e-6, "one fp32 rounding of a double expression: an ulp"},
                {m2, 1e-6, "one fp32 rounding of a double expression: an ulp"},
                {out, 1e-5, "|dW|^2 over changes that may differ by an ulp", -1, 1}};
      if (adamw)
        r.outs.push_back({b16, 8e-3,
                          "round(w): w may differ by an ulp and round to the neighbouring bf16 (2^-7 relative)", -1, 0,
                          4e-3});
      if (adamw) r.self_check = [=](const std::vector<Buf>& got) { return bf16_copy_check(got, w, b16); };
      r.flops = 12.0 * double(n);
    }
  }
}

// greedy and sampled tokens: ties, NaN, -inf / all-NaN / +inf rows, a row subset, V = 1
void sample_rows(bool large) {
  for (int64_t V : large ? std::vector<int64_t>{65536} : std::vector<int64_t>{1, 1000, 65536}) {
    const int64_t rows = large ? 1024 : 24, skip = 2;  // the op reads rows [skip, skip + rows) of the logits
    auto lg = rnd(size_t((rows + skip) * V), -8, 8);
    float* L = lg.data() + skip * V;
    if (V > 10 && !large) {
      for (int64_t j = 0; j < V; j++) L[V + j] = float(j % 5);  // ties at the max
      L[2 * V + 3] = NAN, L[2 * V + 7] = 100.f;
      for (int64_t j = 0; j < V; j++) L[3 * V + j] = -INFINITY;
      for (int64_t j = 0; j < V; j++) L[4 * V + j] = NAN;
      L[5 * V + V / 2] = INFINITY;
    }
    std::vector<uint64_t> seeds(static_cast<size_t>(rows)), ctrs(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; i++) seeds[size_t(i)] = uint64_t(1000 + 7 * i), ctrs[size_t(i)] = uint64_t(i % 5);
    struct Prm {
      float t;
      int k;
      float p;
    };
    for (Prm q : {Prm{0.f, 0, 1.f}, Prm{0.7f, 0, 1.f}, Prm{1.f, 40, 1.f}, Prm{0.8f, 0, 0.9f}, Prm{1.3f, 100, 0.5f},
                  Prm{1.f, 1, 1.f}}) {
      if (large && q.t > 0 && q.k != 40) continue;
      char buf[96];
      std::snprintf(buf, sizeof buf, "rows %lld..%lld of the logits, V=%lld T=%g top_k=%d top_p=%g",
                    static_cast<long long>(skip), static_cast<long long>(skip + rows), static_cast<long long>(V),
                    double(q.t), q.k, double(q.p));
      Row& r = row("sample", std::string(q.t == 0 ? "greedy " : "") + buf);
      const int l = r.f32("logits", lg), sd = r.add("seeds", T::U64, seeds), ct = r.add("counters", T::U64, ctrs),
                out = r.out("tokens", T::I32, size_t(rows));
      SamplingParams sp;
      sp.temperature = q.t, sp.top_k = q.k, sp.top_p = q.p;
      const bool greedy = q.t == 0;
      r.run = [=](Backend& be, const Ptrs& p) {
        be.sample(P(p, l) + skip * V, rows, V, sp, greedy ? nullptr : P<uint64_t>(p, sd),
                  greedy ? nullptr : P<uint64_t>(p, ct), P<int32_t>(p, out));
      };
      r.ref = [=](const Ptrs& p) {
        if (greedy)
          ref::argmax_rows(P(p, l) + skip * V, rows, V, P<int32_t>(p, out));
        else
          ref::sample_rows(P(p, l) + skip * V, rows, V, sp.temperature, sp.top_k, sp.top_p, P<uint64_t>(p, sd),
                           P<uint64_t>(p, ct), P<int32_t>(p, out));
      };
      if (greedy) {
        r.f64 = [=](const std::vector<Buf>& in) {
          std::vector<double> o(static_cast<size_t>(rows));
          for (int64_t i = 0; i < rows; i++) {
            const float* x = IN(in, l) + (skip + i) * V;
            int64_t best = 0;
            for (int64_t j = 1; j < V; j++)
              if (!std::isnan(x[j]) && (std::isnan(x[best]) || x[j] > x[best])) best = j;
            if (std::isnan(x[best]) || (x[best] == -INFINITY)) best = 0;  // all NaN / all -inf: token 0
            o[size_t(i)] = double(best);
          }
          return F64{o};
        };
        r.tol64 = 0, r.why64 = "argmax: lowest id on ties, NaN ignored";
      } else {
        r.why64 = "a random draw: the reference is the definition";
      }
      r.outs = {{out, 0, greedy ? "argmax: identical" : "same uniform draw, same candidate order: identical ids"}};
      r.flops = 0;
    }
  }
}

// random init and the OpenES materialisation, fp32 and bf16
void init_rows(bool large) {
  for (int64_t n : large ? std::vector<int64_t>{int64_t(1) << 26} : std::vector<int64_t>{1, 100003}) {
    for (bool bf : {false, true}) {
      Row& r = row("init_uniform", std::string(bf ? "bf16" : "f32") + " n=" + S(n) + " [-0.3, 0.7)");
      const uint64_t base = init_param_base(42, 7);
      const int out = r.out("out", bf ? T::BF16 : T::F32, size_t(n));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.init_uniform(p[size_t(out)], bf ? DType::BF16 : DType::F32, n, base, -0.3f, 0.7f);
      };
      r.ref = [=](const Ptrs& p) {
        if (!bf) return ref::init_uniform(P(p, out), n, base, -0.3f, 0.7f);
        for (int64_t j = 0; j < n; j++)
          P<uint16_t>(p, out)[j] = f32_to_bf16(init_value(base, uint64_t(j), -0.3f, 0.7f));
      };
      r.f64 = [=](const std::vector<Buf>&) {
        std::vector<double> o(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; j++) {
          const double u = double(splitmix64(base + uint64_t(j)) >> 40) / 16777216.0;
          o[size_t(j)] = double(0.7f - -0.3f) * u + double(-0.3f);
        }
        return F64{o};
      };
      r.tol64 = bf ? 4e-3 : 1e-7,
      r.why64 = bf ? "bf16 rounding: half a bf16 ulp, at most 2^-8 relative" : "one fused multiply-add rounding";
      r.outs = {{out, 0, "fmaf: one rounding on both sides: identical"}};
    }
    for (int variant = 0; variant < 4; variant++) {  // f32 gauss, f32 rad in place, bf16 gauss, bf16 rad in place
      const bool bf = variant >= 2, inplace = variant % 2 == 1;
      const NoiseDist dist = inplace ? NoiseDist::Rademacher : NoiseDist::Gaussian;
      NoiseKey key;
      key.seed = 0x1234567890abcdefull, key.param_id = 17, key.epoch_bucket = 3, key.pair = 9;
      const float scale = 0.01f;
      Row& r = row("perturb_full",
                   std::string(bf ? "bf16 " : "f32 ") + dname(dist) + " n=" + S(n) + (inplace ? " in place" : ""));
      const auto bv = rnd(size_t(n));
      const int base = bf ? r.add("base", T::BF16, to_bf16(bv)) : r.f32("base", bv);
      const int out = inplace ? base : r.out("out", bf ? T::BF16 : T::F32, size_t(n));
      r.run = [=](Backend& be, const Ptrs& p) {
        be.perturb_full(key, dist, scale, p[size_t(base)], p[size_t(out)], bf ? DType::BF16 : DType::F32, n);
      };
      r.ref = [=](const Ptrs& p) {
        if (bf)
          ref::perturb_full_bf16(key, dist, scale, P<uint16_t>(p, base), P<uint16_t>(p, out), n);
        else
          ref::perturb_full(key, dist, scale, P(p, base), P(p, out), n);
      };
      r.f64 = [=](const std::vector<Buf>& in) {
        std::vector<double> o(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; j++)
          o[size_t(j)] = in[size_t(base)].at(size_t(j)) + double(scale) * noise_element(key, dist, uint64_t(j));
        return F64{o};
      };
      r.tol64 = bf ? 4e-3 : 4e-6;
      r.why64 = bf ? "bf16 rounding: half a bf16 ulp, at most 2^-8 relative"
                   : "one fp32 rounding: half an ulp of |w| <= 1 against changes up to 0.05";
      r.outs = {{out, 0.0, "identical noise (our own log/sin/cos), one fmaf: identical"}};
      r.flops = 2.0 * double(n);
    }
  }
}

#if EGGROLL_HAVE_CUDA
// CUDA kernels that are not Backend ops (the cuda column only)
void cuda_kernel_rows() {
  {
    Row& r = row("cuda::philox_blocks", "4099 blocks: the Random123 known answers, then random counters and keys");
    std::vector<uint32_t> ctr = {0,           0,           0,           0,           0xffffffffu, 0xffffffffu,
                                 0xffffffffu, 0xffffffffu, 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    std::vector<uint32_t> key = {0, 0, 0xffffffffu, 0xffffffffu, 0xa4093822u, 0x299f31d0u};
    std::uniform_int_distribution<uint32_t> u32;
    const int64_t n = 4099;
    while (key.size() < size_t(2 * n)) key.push_back(u32(g_rng));
    while (ctr.size() < size_t(4 * n)) ctr.push_back(u32(g_rng));
    const int c = r.add("counters", T::U32, ctr), k = r.add("keys", T::U32, key),
              out = r.out("words", T::U32, size_t(4 * n));
    r.cuda_only = true;
    r.run = [=](Backend&, const Ptrs& p) {
      cuda::philox_blocks(P<uint32_t>(p, c), P<uint32_t>(p, k), n, P<uint32_t>(p, out));
    };
    r.ref = [=](const Ptrs& p) {
      ref::philox_blocks(P<uint32_t>(p, c), P<uint32_t>(p, k), n, P<uint32_t>(p, out));
      const uint32_t known[12] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u, 0x408f276du, 0x41c83b0eu,
                                  0xa20bc7c6u, 0x6d5451fdu, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
      if (std::memcmp(P<uint32_t>(p, out), known, sizeof known) != 0)
        throw std::runtime_error("ref::philox_blocks misses the Random123 known answers");
    };
    r.why64 = "integer words";
    r.outs = {{out, 0, "integer arithmetic: identical words"}};
  }
  for (NoiseDist dist : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
    Row& r = row("cuda::fill_noise", std::string(dname(dist)) + " start 5 (unaligned), 10001 elements");
    NoiseKey key;
    key.seed = 0x1234567890abcdefull, key.param_id = 17, key.epoch_bucket = 3, key.pair = 9;
    const int out = r.out("out", T::F32, 10001);
    r.cuda_only = true;
    r.run = [=](Backend&, const Ptrs& p) { cuda::fill_noise(key, dist, 5, 10001, P(p, out)); };
    r.ref = [=](const Ptrs& p) { fill_noise(key, dist, 5, 10001, P(p, out)); };
    r.why64 = "defined by its fp32 formula";
    r.outs = {{out, 0.0, dist == NoiseDist::Rademacher ? "signs of identical words" : "our own log/sin/cos: identical"}};
  }
  {
    const int64_t n = 13 * 256;
    auto v = rnd(size_t(n), -100, 100);
    v[0] = 1.00390625f + 1.0f / 512;  // halfway cases: round to nearest even
    v[1] = 1.0f + 1.0f / 256;
    Row& r = row("cuda::f32_to_bf16 + bf16_to_f32", "n=" + S(n) + " with halfway cases");
    const int x = r.f32("x", v), b = r.out("bits", T::BF16, size_t(n)), y = r.out("back", T::F32, size_t(n));
    r.cuda_only = true;
    r.run = [=](Backend&, const Ptrs& p) {
      cuda::f32_to_bf16(P(p, x), P<uint16_t>(p, b), n);
      cuda::bf16_to_f32(P<uint16_t>(p, b), P(p, y), n);
    };
    r.ref = [=](const Ptrs& p) {
      for (int64_t j = 0; j < n; j++)
        P<uint16_t>(p, b)[j] = f32_to_bf16(P(p, x)[j]), P(p, y)[j] = bf16_to_f32(P<uint16_t>(p, b)[j]);
    };
    r.why64 = "bit conversions";
    r.outs = {{b, 0, "round to nearest even: identical"}, {y, 0, "exact widening: identical"}};
  }
  for (bool rank : {false, true}) {
    const int64_t G = 64, Pp = 3;
    auto rw = rnd(size_t(G * Pp), 0, 1);
    for (size_t j = 0; j < rw.size(); j += 7) rw[j] = std::round(rw[j] * 2.f) / 2.f;  // ties
    rw[5] = NAN, rw[9] = INFINITY, rw[20] = -INFINITY;
    Row& r = row("cuda::shape_fitness",
                 std::string(rank ? "centered ranks" : "z-score") + " G=64 P=3, ties, NaN and +-inf rewards");
    const int rr = r.f32("rewards", rw), fit = r.out("fitness", T::F32, size_t(G)),
              sc = r.out("score", T::F64, size_t(G));
    r.cuda_only = true;
    r.run = [=](Backend&, const Ptrs& p) { cuda::shape_fitness(P(p, rr), G, Pp, rank, P(p, fit), P<double>(p, sc)); };
    r.ref = [=](const Ptrs& p) {  // es/fitness.h shape_fitness
      const FitnessResult want = shape_fitness(std::span<const float>(P(p, rr), size_t(G * Pp)), size_t(G),
                                               rank ? FitnessShaping::CenteredRank : FitnessShaping::ZScore);
      std::memcpy(P(p, fit), want.fitness.data(), size_t(G) * 4);
      std::memcpy(P<double>(p, sc), want.direction_score.data(), size_t(G) * 8);
    };
    r.why64 = "es/fitness.h computes in double already";
    r.outs = {{fit, rank ? 0.0 : 1e-5, rank ? "ranks: identical" : "mean and std summed in another order"},
              {sc, 0, "direction sums of the same rewards in the same order: identical"}};
  }
}
#endif

// ---- running and comparing ---------------------------------------------------------------------------

struct Verdict {
  bool ok = true;
  double err = 0;
  std::string detail;  // worst element
};

std::string fmt(double v) {  // errors and tolerances
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}
std::string val(double v) {  // values
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

// got against want (both as arrays of the output's type); init: the input values (delta outputs)
Verdict compare(const Buf& got, const Buf& want, const Buf* init, size_t count, double tol) {
  Verdict v;
  const size_t n = count ? count : want.n();
  if (got.n() < n || want.n() < n) return {false, INFINITY, "size mismatch"};
  const bool fl = want.t == T::F32 || want.t == T::BF16 || want.t == T::F64;
  if (!fl || tol == 0) {  // identical bits (NaN payloads included)
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
      if (got.bits(i) != want.bits(i)) diff += diff == 0 ? (first = i, 1) : 1;
    v.ok = diff == 0, v.err = double(diff);
    if (diff) {
      v.detail =
          S(int64_t(diff)) + " of " + S(int64_t(n)) + " elements differ, first [" + S(int64_t(first)) + "]: got ";
      v.detail += fl ? val(got.at(first)) + " want " + val(want.at(first))
                     : S(int64_t(got.bits(first))) + " want " + S(int64_t(want.bits(first)));
    }
    return v;
  }
  double num = 0, den = 0;
  size_t worst = 0;
  for (size_t i = 0; i < n; i++) {
    const double base = init ? init->at(i) : 0.0;
    const double g = got.at(i) - base, w = want.at(i) - base;
    double d = std::fabs(g - w);
    if (std::isnan(g) != std::isnan(w) || (std::isnan(d) && !(std::isnan(g) && std::isnan(w)))) d = INFINITY;
    if (std::isnan(d)) d = 0;  // NaN in both
    if (d > num) num = d, worst = i;
    if (std::isfinite(w)) den = std::max(den, std::fabs(w));
  }
  v.err = den > 0 ? num / den : num;
  v.ok = v.err <= tol;
  v.detail = "worst [" + S(int64_t(worst)) + "]: got " + val(got.at(worst)) + " want " + val(want.at(worst));
  return v;
}

// float64 values against the reference output
Verdict compare64(const std::vector<double>& x, const Buf& want, const Buf* init, size_t count, double tol) {
  Buf b{want.name, T::F64, std::vector<uint8_t>(x.size() * 8)};
  std::memcpy(b.b.data(), x.data(), b.b.size());
  Buf w{want.name, T::F64, std::vector<uint8_t>((count ? count : want.n()) * 8)}, in;
  for (size_t i = 0; i < w.n(); i++) {
    const double v = want.t == T::I32 ? double(reinterpret_cast<const int32_t*>(want.b.data())[i]) : want.at(i);
    std::memcpy(w.b.data() + 8 * i, &v, 8);
  }
  if (init) {
    in = Buf{init->name, T::F64, std::vector<uint8_t>(w.n() * 8)};
    for (size_t i = 0; i < w.n(); i++) {
      const double v = init->at(i);
      std::memcpy(in.b.data() + 8 * i, &v, 8);
    }
  }
  if (tol == 0 && want.t != T::I32) {  // exact: compare the float64 value rounded to the output's type
    for (size_t i = 0; i < w.n(); i++) {
      const double r = want.t == T::BF16  ? bf16_to_f32(f32_to_bf16(float(x[i])))
                       : want.t == T::F32 ? double(float(x[i]))
                                          : x[i];
      std::memcpy(b.b.data() + 8 * i, &r, 8);
    }
  }
  return compare(w, b, init ? &in : nullptr, w.n(), tol);
}

// Buffers in a backend's memory for one row, released on every path.
struct DevBufs {
  Backend& be;
  Ptrs p;
  explicit DevBufs(Backend& b) : be(b) {}
  ~DevBufs() {
    for (void* q : p) be.release(q);
  }
};

std::vector<Buf> run_on(Backend& be, const Row& r) {
  DevBufs d(be);
  for (const Buf& b : r.bufs) {
    d.p.push_back(be.alloc(b.b.size()));
    be.upload(d.p.back(), b.b.data(), b.b.size());
  }
  r.run(be, d.p);
  be.synchronize();
  std::vector<Buf> got = r.bufs;
  for (size_t i = 0; i < got.size(); i++) be.download(got[i].b.data(), d.p[i], got[i].b.size());
  be.synchronize();
  return got;
}

std::vector<Buf> run_ref(const Row& r) {
  std::vector<Buf> h = r.bufs;
  Ptrs p;
  for (Buf& b : h) p.push_back(b.b.data());
  r.ref(p);
  return h;
}

struct Tally {
  int passed = 0, failed = 0, skipped = 0, na = 0;
};

std::string row_name(const Row& r) { return r.op + " [" + r.shape + "]"; }

void report(Tally& t, bool ok, const std::string& col, const Row& r, const std::string& out, const Verdict& v,
            double tol, const std::string& why) {
  (ok ? t.passed : t.failed)++;
  if (ok) {
    std::printf("PASS %-8s %s %s: err %s (tol %s)\n", col.c_str(), row_name(r).c_str(), out.c_str(), fmt(v.err).c_str(),
                fmt(tol).c_str());
  } else {
    std::printf("FAIL %-8s op=%s case=[%s] backend=%s output=%s err=%s tol=%s (%s); %s\n", col.c_str(), r.op.c_str(),
                r.shape.c_str(), col.c_str(), out.c_str(), fmt(v.err).c_str(), fmt(tol).c_str(), why.c_str(),
                v.detail.c_str());
  }
}

void build_rows(bool large) {
  if (!large) memory_rows(), layer_rows(), head_rows();
  linear_rows(large);
  noise_rows(large);
  update_rows(large);
  optimizer_rows(large);
  sample_rows(large);
  init_rows(large);
#if EGGROLL_HAVE_CUDA
  if (!large) cuda_kernel_rows();
#endif
}

struct Column {
  std::string name;
  Backend* be;
  bool exact;  // identical bits to ref:: expected
};

int check_table(std::vector<Column>& cols, const std::string& cuda_skip) {
  std::vector<Tally> tally(cols.size() + 1);  // [0]: float64
  for (const Row& r : g_rows) {
    std::vector<Buf> want;
    try {
      want = run_ref(r);
    } catch (const std::exception& e) {
      tally[0].failed++;
      std::printf("FAIL ref      op=%s case=[%s]: the reference threw: %s\n", r.op.c_str(), r.shape.c_str(), e.what());
      continue;
    }
    auto init_of = [&](const Out& o) { return o.delta_from >= 0 ? &r.bufs[size_t(o.delta_from)] : nullptr; };
    if (r.f64) {
      const F64 x = r.f64(r.bufs);
      for (size_t k = 0; k < r.outs.size() && k < x.size(); k++) {
        const Out& o = r.outs[k];
        const double tol = o.tol64 >= 0 ? o.tol64 : r.tol64;
        const Verdict v = compare64(x[k], want[size_t(o.buf)], init_of(o), o.count, tol);
        report(tally[0], v.ok, "float64", r, r.bufs[size_t(o.buf)].name, v, tol, r.why64);
      }
    } else {
      tally[0].na++;
    }
    for (size_t c = 0; c < cols.size(); c++) {
      if (r.cuda_only && cols[c].exact) {
        tally[c + 1].na++;
        continue;
      }
      std::vector<Buf> got;
      try {
        got = run_on(*cols[c].be, r);
      } catch (const std::exception& e) {
        tally[c + 1].failed++;
        std::printf("FAIL %-8s op=%s case=[%s] backend=%s: threw: %s\n", cols[c].name.c_str(), r.op.c_str(),
                    r.shape.c_str(), cols[c].name.c_str(), e.what());
        continue;
      }
      if (r.self_check) {
        const std::string bad = r.self_check(got);
        Verdict v{bad.empty(), bad.empty() ? 0.0 : 1.0, bad};
        report(tally[c + 1], v.ok, cols[c].name, r, "self-consistency", v, 0, "outputs consistent with each other");
      }
      for (const Out& o : r.outs) {
        const double tol = cols[c].exact ? 0.0 : o.tol;
        const Verdict v = compare(got[size_t(o.buf)], want[size_t(o.buf)], init_of(o), o.count, tol);
        report(tally[c + 1], v.ok, cols[c].name, r, r.bufs[size_t(o.buf)].name, v, tol,
               cols[c].exact ? std::string("the CPU reference ops: identical bits") : o.why);
      }
    }
  }
  int failed = 0;
  std::printf("\n%zu rows\n", g_rows.size());
  std::printf("float64: %d passed, %d failed (%d rows without a float64 column)\n", tally[0].passed, tally[0].failed,
              tally[0].na);
  failed += tally[0].failed;
  for (size_t c = 0; c < cols.size(); c++) {
    std::printf("%s: %d passed, %d failed (%d cuda-kernel rows n/a)\n", cols[c].name.c_str(), tally[c + 1].passed,
                tally[c + 1].failed, tally[c + 1].na);
    failed += tally[c + 1].failed;
  }
  if (!cuda_skip.empty()) std::printf("cuda: SKIPPED, %zu rows not run (%s)\n", g_rows.size(), cuda_skip.c_str());
  return failed ? 1 : 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void perf(std::vector<Column>& cols) {
  for (const Row& r : g_rows)
    for (Column& col : cols) {
      if (r.cuda_only && col.exact) continue;
      Backend& be = *col.be;
      DevBufs d(be);
      double bytes = 0;
      for (const Buf& b : r.bufs) {
        d.p.push_back(be.alloc(b.b.size()));
        be.upload(d.p.back(), b.b.data(), b.b.size());
        bytes += double(b.b.size());
      }
      r.run(be, d.p);  // warm-up
      be.synchronize();
      std::vector<double> t;
      for (int rep = 0; rep < 7; rep++) {
        const auto t0 = std::chrono::steady_clock::now();
        r.run(be, d.p);
        be.synchronize();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      const double s = median(t);
      std::printf("{\"op\":\"%s\",\"case\":\"%s\",\"backend\":\"%s\",\"us\":%.3f,\"gbps\":%.3f,\"gflops\":%s}\n",
                  r.op.c_str(), r.shape.c_str(), col.name.c_str(), s * 1e6, bytes / s / 1e9,
                  r.flops > 0 ? fmt(r.flops / s / 1e9).c_str() : "null");
      std::fflush(stdout);
    }
}

}  // namespace

int main(int argc, char** argv) {
  // The cpu and checked columns must equal the bf16 reference bit for bit: the exact kernel, not the
  // AMX tiles (which round their running sums their own way; tests/test_gemm.cpp checks those).
  setenv("EGGROLL_BF16_KERNEL", "exact", 1);
  bool do_perf = false, large = false;
  std::string filter, only;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--perf")
      do_perf = true;
    else if (a == "--large")
      large = true;
    else if (a == "--filter" && i + 1 < argc)
      filter = argv[++i];
    else if (a == "--backend" && i + 1 < argc)
      only = argv[++i];
    else {
      std::fprintf(stderr, "usage: test_backend_ops [--filter TEXT] [--backend cpu|checked|cuda] [--perf [--large]]\n");
      return 2;
    }
  }
  try {
    build_rows(false);
    if (do_perf && large) {
      g_rows.clear();
      build_rows(true);
    }
    if (!filter.empty())
      std::erase_if(g_rows, [&](const Row& r) { return row_name(r).find(filter) == std::string::npos; });
    CpuBackend cpu;
    test::CheckedBackend checked;
    std::unique_ptr<Backend> cuda_be;
    std::string cuda_skip;
#if EGGROLL_HAVE_CUDA
    if (cuda::device_count() > 0) {
      cuda_be = make_backend("cuda");
      std::printf("cuda device: %s\n", cuda::device_name(0).c_str());
    } else {
      cuda_skip = "no CUDA device";
    }
#else
    cuda_skip = "built without the CUDA backend";
    // the cuda-kernel rows need the CUDA library
#endif
    std::vector<Column> cols;
    if (only.empty() || only == "cpu") cols.push_back({"cpu", &cpu, true});
    if (only.empty() || only == "checked") cols.push_back({"checked", &checked, true});
    if (cuda_be && (only.empty() || only == "cuda")) cols.push_back({"cuda", cuda_be.get(), false});
    if (!cuda_be) std::fprintf(do_perf ? stderr : stdout, "SKIPPED cuda column: %s\n", cuda_skip.c_str());
    if (!cuda_be && only == "cuda") return 77;  // nothing to run
    if (do_perf) {
      perf(cols);
      return 0;
    }
    const int rc = check_table(cols, cuda_be ? "" : cuda_skip);
    if (checked.live_allocations() != 0) {
      std::printf("FAIL checked: %zu allocations never released\n", checked.live_allocations());
      return 1;
    }
    return rc;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
