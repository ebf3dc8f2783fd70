// The batch-invariant GEMM against a float64 reference, and its invariance to the batch.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include <cstring>

#include "core/dtype.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/parallel.h"
#include "core/ops/linear.h"

using namespace eggroll;

namespace {
std::vector<float> randv(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
}  // namespace

TEST_CASE("gemm_xwt and gemm_xp match a float64 reference", "[gemm]") {
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 17, 5}, {6, 256, 64},
                               {7, 300, 130}, {13, 513, 70}, {64, 768, 96}}) {
    INFO(rows << "x" << in << "x" << out);
    auto X = randv(size_t(rows * in), 1), W = randv(size_t(out * in), 2);
    std::vector<float> Y(size_t(rows * out)), Z(size_t(rows * out));
    std::vector<float> P(size_t(in * out));  // P = W^T
    for (int64_t o = 0; o < out; o++)
      for (int64_t k = 0; k < in; k++) P[size_t(k * out + o)] = W[size_t(o * in + k)];
    gemm_xwt(X.data(), W.data(), Y.data(), rows, in, out);
    gemm_xp(X.data(), P.data(), Z.data(), rows, in, out);
    double worst = 0;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t o = 0; o < out; o++) {
        double ref = 0;
        for (int64_t k = 0; k < in; k++) ref += double(X[size_t(r * in + k)]) * W[size_t(o * in + k)];
        worst = std::max(worst, std::fabs(ref - Y[size_t(r * out + o)]) / std::sqrt(double(in)));
        // both forms accumulate in the same order
        CHECK(Y[size_t(r * out + o)] == Z[size_t(r * out + o)]);
      }
    CHECK(worst < 1e-6);
  }
}

TEST_CASE("a row's result does not depend on the other rows", "[gemm]") {
  const int64_t in = 700, out = 150;
  auto X = randv(size_t(64 * in), 3), W = randv(size_t(out * in), 4);
  std::vector<float> all(static_cast<size_t>(64 * out)), one(static_cast<size_t>(out));
  gemm_xwt(X.data(), W.data(), all.data(), 64, in, out);
  for (int64_t r : {0, 5, 6, 31, 63}) {
    gemm_xwt(X.data() + r * in, W.data(), one.data(), 1, in, out);
    for (int64_t o = 0; o < out; o++) REQUIRE(one[size_t(o)] == all[size_t(r * out + o)]);
  }
}

TEST_CASE("pre-packed weights give bit-identical products", "[gemm]") {
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 5, 3}, {7, 300, 130}, {13, 513, 64}, {2, 256, 65}}) {
    INFO(rows << "x" << in << "x" << out);
    auto X = randv(size_t(rows * in), 5), W = randv(size_t(out * in), 6);
    std::vector<float> a(size_t(rows * out)), b(size_t(rows * out));
    gemm_xwt(X.data(), W.data(), a.data(), rows, in, out);
    PackedWeights P = pack_weights(W.data(), in, out);
    gemm_packed(X.data(), P, b.data(), rows);
    CHECK(a == b);
  }
}

// ---- bf16 products (core/gemm_bf16.h) ----------------------------------------------------------

namespace {
std::vector<uint16_t> bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); i++) b[i] = f32_to_bf16(v[i]);
  return b;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}
std::vector<Bf16Kernel> kernels_here() {
  std::vector<Bf16Kernel> k = {Bf16Kernel::Scalar};
  if (bf16_kernel_supported(Bf16Kernel::Avx512Bf16)) k.push_back(Bf16Kernel::Avx512Bf16);
  if (bf16_kernel_supported(Bf16Kernel::Amx)) k.push_back(Bf16Kernel::Amx);
  return k;
}
}  // namespace

TEST_CASE("every bf16 kernel equals the reference (bit for bit but AMX), both product directions", "[gemm][bf16]") {
  if (!bf16_kernel_supported(Bf16Kernel::Avx512Bf16))
    WARN("this CPU has no AVX512-BF16: only the scalar kernel is checked here");
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 2, 3}, {3, 17, 5}, {6, 256, 64},
                               {7, 300, 130}, {13, 513, 70}, {64, 768, 96}, {5, 1024, 129}, {37, 1030, 200}}) {
    INFO(rows << "x" << in << "x" << out);
    auto X = randv(size_t(rows * in), 3), Wv = randv(size_t(out * in), 4);
    // magnitudes over many binades, some subnormal (flushed by the definition)
    for (size_t i = 0; i < X.size(); i += 7) X[i] *= std::ldexp(1.f, -int(i % 140));
    for (size_t i = 0; i < Wv.size(); i += 5) Wv[i] *= std::ldexp(1.f, -int(i % 130));
    const auto W = bf16_bits(Wv);
    std::vector<uint16_t> P(W.size());  // the same matrix as P [in, out]
    for (int64_t o = 0; o < out; o++)
      for (int64_t k = 0; k < in; k++) P[size_t(k * out + o)] = W[size_t(o * in + k)];
    std::vector<float> want(size_t(rows * out)), want_p(size_t(rows * out));
    ref::linear_bf16(W.data(), false, X.data(), want.data(), rows, in, out);
    ref::linear_bf16(P.data(), true, X.data(), want_p.data(), rows, in, out);
    CHECK(same_bits(want, want_p));
    // close to the float64 product of the same bf16 roundings
    std::vector<double> exact(size_t(rows * out));
    for (int64_t r = 0; r < rows; r++)
      for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++)
          exact[size_t(r * out + o)] +=
              double(round_to_bf16(X[size_t(r * in + k)])) * bf16_to_f32(W[size_t(o * in + k)]);
    auto worst = [&](const std::vector<float>& Y) {
      double w = 0;
      for (size_t i = 0; i < Y.size(); i++) w = std::max(w, std::fabs(exact[i] - Y[i]) / std::sqrt(double(in)));
      return w;
    };
    CHECK(worst(want) < 1e-6);
    const PackedBf16 pw = pack_bf16(W.data(), in, out, false), pp = pack_bf16(P.data(), in, out, true),
                     pf = pack_bf16(Wv.data(), in, out, false);
    CHECK(pw.data == pp.data);
    CHECK(pw.data == pf.data);  // packing fp32 values = packing their RNE bits
    for (Bf16Kernel k : kernels_here()) {
      INFO(bf16_kernel_name(k));
      std::vector<float> Y(size_t(rows * out), -7.f);
      gemm_bf16(X.data(), pw, Y.data(), rows, k);
      if (k == Bf16Kernel::Amx)  // tdpbf16ps rounds its sums its own way: as close, not the same bits
        CHECK(worst(Y) < 1e-6);
      else
        CHECK(same_bits(Y, want));
    }
  }
}

TEST_CASE("bf16 products: a row's result does not depend on the batch or the thread count", "[gemm][bf16]") {
  const int64_t rows = 23, in = 700, out = 200;
  auto X = randv(size_t(rows * in), 5), Wv = randv(size_t(out * in), 6);
  const PackedBf16 pw = pack_bf16(Wv.data(), in, out, false);
  for (Bf16Kernel k : kernels_here()) {
    INFO(bf16_kernel_name(k));
    std::vector<float> all(size_t(rows * out));
    gemm_bf16(X.data(), pw, all.data(), rows, k);
    for (int64_t r : {int64_t(0), int64_t(5), int64_t(6), int64_t(22)}) {
      std::vector<float> one(static_cast<size_t>(out));
      gemm_bf16(X.data() + r * in, pw, one.data(), 1, k);
      CHECK(std::memcmp(one.data(), all.data() + r * out, size_t(out) * 4) == 0);
    }
    set_num_threads(1);
    std::vector<float> serial(size_t(rows * out));
    gemm_bf16(X.data(), pw, serial.data(), rows, k);
    set_num_threads(0);
    CHECK(same_bits(serial, all));
  }
}

TEST_CASE("a group of bf16 products gives each product's bits alone, every kernel", "[gemm][bf16]") {
  // shapes of the step's groups in small: whole and partial panel tiles, an odd in, one empty
  struct Sh {
    int64_t in, out;
    bool xp;
  };
  const Sh shapes[] = {{96, 64, true}, {96, 130, true}, {33, 32, false}, {96, 0, true}, {0, 20, false}, {257, 200, false}};
  for (int64_t rows : {int64_t(1), int64_t(7), int64_t(37)}) {
    std::vector<std::vector<float>> X, Y;
    std::vector<PackedBf16> W;
    for (size_t i = 0; i < std::size(shapes); i++) {
      const Sh& s = shapes[i];
      X.push_back(randv(size_t(rows * s.in), uint32_t(20 + i)));
      W.push_back(pack_bf16(randv(size_t(s.in * s.out), uint32_t(40 + i)).data(), s.in, s.out, s.xp));
    }
    for (Bf16Kernel k : kernels_here()) {
      INFO(bf16_kernel_name(k) << " rows " << rows);
      std::vector<Bf16Product> items;
      Y.assign(std::size(shapes), {});
      for (size_t i = 0; i < std::size(shapes); i++) {
        Y[i].assign(size_t(rows * shapes[i].out), -7.f);
        items.push_back({X[i].data(), &W[i], Y[i].data()});
      }
      gemm_bf16_group(items.data(), int(items.size()), rows, k);
      for (size_t i = 0; i < std::size(shapes); i++) {
        std::vector<float> alone(size_t(rows * shapes[i].out), 3.f);
        gemm_bf16(X[i].data(), W[i], alone.data(), rows, k);
        CHECK(same_bits(alone, Y[i]));
      }
    }
  }
}

TEST_CASE("a bf16 product's rank-1 epilogue gives the product's bits then one fma per output, every kernel",
          "[gemm][bf16]") {
  // several k blocks (in > kGemmKC), partial panel tiles and micro-tiles, an odd in, an empty in;
  // rows share factors in pairs (as an antithetic pair does) and one row has its own
  struct Sh {
    int64_t in, out;
    bool xp;
  };
  const Sh shapes[] = {{600, 200, false}, {96, 130, true}, {33, 64, false}, {0, 20, false}, {257, 70, true}};
  for (int64_t rows : {int64_t(1), int64_t(7), int64_t(37)}) {
    for (size_t i = 0; i < std::size(shapes); i++) {
      const Sh& s = shapes[i];
      const auto X = randv(size_t(rows * s.in), uint32_t(60 + i));
      const PackedBf16 W = pack_bf16(randv(size_t(s.in * s.out), uint32_t(80 + i)).data(), s.in, s.out, s.xp);
      const auto F = randv(size_t(((rows + 1) / 2) * s.out), uint32_t(90 + i));
      auto t = randv(size_t(rows), uint32_t(95 + i));
      std::vector<const float*> ro(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; r++) ro[size_t(r)] = F.data() + (r / 2) * s.out;
      for (Bf16Kernel k : kernels_here()) {
        INFO(bf16_kernel_name(k) << " rows " << rows << " shape " << i);
        std::vector<float> want(size_t(rows * s.out), 3.f), got(size_t(rows * s.out), -7.f);
        gemm_bf16(X.data(), W, want.data(), rows, k);
        for (int64_t r = 0; r < rows; r++)
          for (int64_t o = 0; o < s.out; o++)
            want[size_t(r * s.out + o)] = std::fma(ro[size_t(r)][o], t[size_t(r)], want[size_t(r * s.out + o)]);
        Bf16Product p{X.data(), &W, got.data()};
        p.rank1_out = ro.data();
        p.rank1_t = t.data();
        const Bf16Product plain{X.data(), &W, nullptr};
        std::vector<float> other(size_t(rows * s.out), 1.f);
        const Bf16Product both[2] = {p, {plain.X, plain.W, other.data()}};  // a group: the epilogue stays its own
        gemm_bf16_group(both, 2, rows, k);
        CHECK(same_bits(want, got));
        std::vector<float> alone(size_t(rows * s.out), 5.f);
        gemm_bf16(X.data(), W, alone.data(), rows, k);
        CHECK(same_bits(alone, other));
      }
    }
  }
}

TEST_CASE("a product's inputs round to bf16 pairs exactly as f32_to_bf16 does (vector path included)", "[gemm][bf16]") {
  // random bit patterns (every exponent, NaNs, infinities, subnormals) plus the edge cases:
  // ties to even both ways, the largest subnormal (rounds up to the smallest normal), the
  // largest finite (rounds to infinity), signalling and quiet NaNs
  std::mt19937 g(11);
  std::vector<float> x(4099);
  for (auto& v : x) {
    const uint32_t u = uint32_t(g());
    std::memcpy(&v, &u, 4);
  }
  const uint32_t edges[] = {0x3f808000u, 0x3f818000u, 0x007fffffu, 0x80000001u, 0x7f7fffffu, 0xff7fffffu,
                            0x7f800001u, 0x7fc00000u, 0xff800000u, 0x7f800000u, 0x00000000u, 0x80000000u,
                            0x3f80ffffu, 0x3f807fffu, 0x7fffffffu, 0xffbfffffu};
  for (size_t e = 0; e < std::size(edges); e++) std::memcpy(&x[e * 3 + 1], &edges[e], 4);
  for (int64_t in : {int64_t(1), int64_t(2), int64_t(15), int64_t(16), int64_t(17), int64_t(33), int64_t(4099)}) {
    std::vector<uint32_t> got(size_t((in + 1) / 2), 0xdeadbeefu);
    bf16_round_pairs(x.data(), in, got.data());
    for (int64_t k = 0; k < in; k++) {
      const uint16_t h = k % 2 ? uint16_t(got[size_t(k / 2)] >> 16) : uint16_t(got[size_t(k / 2)] & 0xffff);
      INFO("in " << in << " element " << k);
      REQUIRE(h == f32_to_bf16(x[size_t(k)]));
    }
    if (in % 2) REQUIRE((got.back() >> 16) == 0u);
  }
}

TEST_CASE("repacking from new fp32 values equals a fresh packing", "[gemm][bf16]") {
  const int64_t in = 129, out = 65;
  auto A = randv(size_t(in * out), 7), B = randv(size_t(in * out), 8);
  PackedBf16 p = pack_bf16(A.data(), in, out, true);
  repack_bf16(p, B.data(), true);
  CHECK(p.data == pack_bf16(B.data(), in, out, true).data);
}

TEST_CASE("the default bf16 kernel is the fastest this CPU offers; exact names the exact one", "[gemm][bf16]") {
  CHECK(best_exact_bf16_kernel() != Bf16Kernel::Amx);
  CHECK(bf16_kernel_supported(best_exact_bf16_kernel()));
  if (std::getenv("EGGROLL_BF16_KERNEL") == nullptr) {
    const Bf16Kernel want = bf16_kernel_supported(Bf16Kernel::Amx) ? Bf16Kernel::Amx : best_exact_bf16_kernel();
    CHECK(best_bf16_kernel() == want);
  } else {
    WARN("EGGROLL_BF16_KERNEL is set: the default choice is not checked");
  }
}
