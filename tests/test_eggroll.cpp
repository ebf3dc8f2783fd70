// EGGROLL: the low-rank forward trick, the update GEMM, antithetic symmetry, the estimator.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "core/cpu_backend.h"
#include "es/population_engine.h"
#include "core/ops/ops.h"
#include "rwkv/forward.h"

using namespace eggroll;

namespace {

ModelConfig small_cfg() {
  ModelConfig c = ModelConfig::preset("tiny", 97);
  c.n_layer = 2;
  return c;
}

// E_i of a matrix, materialised [rows, cols].
std::vector<float> materialise(const Model& m, int pid, const NoiseConfig& nc, uint64_t epoch, int member) {
  const Param& p = m.params[size_t(pid)];
  auto f = lowrank_factors(nc, uint32_t(pid), epoch, uint32_t(member), size_t(p.rows), size_t(p.cols));
  const float c = lowrank_scale(nc, uint32_t(member));
  std::vector<float> E(p.numel());
  for (int64_t i = 0; i < p.rows; i++)
    for (int64_t j = 0; j < p.cols; j++) {
      double acc = 0;
      for (int q = 0; q < nc.rank; q++) acc += double(f[size_t(i * nc.rank + q)]) * f[size_t((p.rows + j) * nc.rank + q)];
      E[size_t(i * p.cols + j)] = float(c * acc);
    }
  return E;
}

// The model member i runs: W + E_i for every selected parameter.
Model perturbed_copy(const Model& m, const ParamSelection& sel, const NoiseConfig& nc, uint64_t epoch, int member) {
  Model c = m;
  c.params = m.params;
  for (int pid : sel.ids()) {
    auto& w = c.params[size_t(pid)].data;
    if (sel.lowrank[size_t(pid)]) {
      auto E = materialise(m, pid, nc, epoch, member);
      for (size_t j = 0; j < w.size(); j++) w[j] += E[j];
    } else {
      std::vector<float> eps(w.size());
      fill_vector_noise(nc, uint32_t(pid), epoch, uint32_t(member), w.size(), eps.data());
      for (size_t j = 0; j < w.size(); j++) w[j] += vector_scale(nc, uint32_t(member)) * eps[j];
    }
  }
  return c;
}

}  // namespace

TEST_CASE("the low-rank forward equals the forward with W + E_i for every member", "[eggroll]") {
  Model m = Model::random(small_cfg(), 3);
  for (bool freeze : {true, false}) {
    std::vector<std::vector<float>> kept_logits;  // the Keep run's, for the Regenerate run to equal
    for (NoiseCache cache : {NoiseCache::Keep, NoiseCache::Regenerate}) {
      INFO("freeze_nonlora " << freeze << " cache " << int(cache));
      auto sel = select_params(m, {"*"}, {}, freeze);  // emb and head included
      NoiseConfig nc;
      nc.seed = 11, nc.rank = 2, nc.sigma = 0.05f;
      const int G = 6, T = 4;
      Perturbation pert(m, sel, nc, cache);
      pert.begin_step(5, G);
      Forward fwd(m);
      BatchState st(m.cfg, G);
      std::vector<int> slots = {0, 1, 2, 3, 4, 5};
      std::vector<float> lg(size_t(G) * 97);
      std::vector<std::vector<float>> batched(static_cast<size_t>(T));
      for (int t = 0; t < T; t++) {
        std::vector<int32_t> toks;
        for (int i = 0; i < G; i++) toks.push_back(int32_t((i * 13 + t * 7 + 1) % 97));
        fwd.step(toks, slots, st, lg.data(), {}, &pert.view());
        batched[size_t(t)] = lg;
      }
      // the factors read from the step's cache or generated where they are used (only the
      // elements a row needs: the embedding's token row) are the same numbers: same logits, bit for bit
      if (cache == NoiseCache::Keep) kept_logits = batched;
      else CHECK(kept_logits == batched);
      double worst = 0;
      for (int i = 0; i < G; i++) {
        Model mi = perturbed_copy(m, sel, nc, 5, i);
        mi.layers = m.layers;
        Forward f1(mi);
        BatchState s1(mi.cfg, 1);
        const int slot = 0;
        std::vector<float> l1(97);
        for (int t = 0; t < T; t++) {
          int32_t tok = int32_t((i * 13 + t * 7 + 1) % 97);
          f1.step(std::span(&tok, 1), std::span(&slot, 1), s1, l1.data());
          for (int v = 0; v < 97; v++)
            worst = std::max(worst, double(std::fabs(l1[size_t(v)] - batched[size_t(t)][size_t(i * 97 + v)])));
        }
      }
      CHECK(worst < 1e-5);
    }
  }
}

TEST_CASE("lowrank_add: the two rows of a pair corrected together equal each corrected alone, regenerated equal cached", "[eggroll]") {
  // rows 0-1 and 4-5 are pairs (one pass over the shared factors), rows 2-3 and 6 are not
  const std::vector<int32_t> members = {6, 7, 3, 8, 0, 1, 5};
  const int64_t B = int64_t(members.size());
  NoiseSpec ns;
  ns.seed = 5, ns.epoch_bucket = 2, ns.rank = 1, ns.sigma = 0.02f;
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (bool xp : {false, true})
    // m = 1100: regenerated factors come in several pieces (correct_rank1_rows_generated), the
    // last one not a multiple of 16
    for (int64_t m : {int64_t(37), int64_t(64), int64_t(1100)}) {
      const int64_t n = 45, in = xp ? m : n, out = xp ? n : m, len = m + n;
      std::vector<float> X(size_t(B * in)), Y(size_t(B * out)), cache(size_t(5 * len));
      for (auto& v : X) v = u(g);
      for (auto& v : Y) v = u(g);
      ref::fill_noise_cache(ns, 9, len, 5, cache.data());
      std::vector<float> regenerated;
      for (const float* ca : {static_cast<const float*>(nullptr), static_cast<const float*>(cache.data())}) {
        std::vector<float> together = Y, alone = Y;
        ref::lowrank_add(ns, 9, m, n, xp, X.data(), together.data(), members.data(), B, ca);
        for (int64_t i = 0; i < B; i++)
          ref::lowrank_add(ns, 9, m, n, xp, X.data() + i * in, alone.data() + i * out, members.data() + i, 1, ca);
        INFO("x_times_p " << xp << " m " << m << " cached " << (ca != nullptr));
        CHECK(together == alone);
        CHECK(together != Y);
        if (ca) CHECK(together == regenerated);  // the cache holds the regenerated factors' bits
        else regenerated = together;
      }
    }
}

TEST_CASE("antithetic members get exactly opposite perturbations", "[eggroll]") {
  Model m = Model::random(small_cfg(), 4);
  NoiseConfig nc;
  nc.seed = 2, nc.rank = 3, nc.sigma = 0.01f;
  const int pid = m.layers[1].Wk;
  auto e0 = materialise(m, pid, nc, 9, 4), e1 = materialise(m, pid, nc, 9, 5), e2 = materialise(m, pid, nc, 9, 6);
  for (size_t j = 0; j < e0.size(); j++) REQUIRE(e0[j] == -e1[j]);
  CHECK(e0 != e2);
}

TEST_CASE("the engine's update GEMM equals the explicit sum of f_i E_i", "[eggroll]") {
  const Model m = Model::random(small_cfg(), 5);
  for (bool freeze : {true, false}) {
    auto sel = select_params(m, {"blocks.1.*", "head.weight"}, {}, freeze);
    NoiseConfig nc;
    nc.seed = 8, nc.rank = 2, nc.sigma = 0.02f;
    std::vector<float> fit = {0.5f, -1.f, 2.f, 0.25f, -0.75f, 1.5f, 0.f, -2.f};
    const int N = int(fit.size());
    // SGD with lr 1: the weights move by g (up to the rounding of w + g)
    Model moved = m;
    {
      CpuBackend be;
      PopulationEngineOptions o;
      o.max_rows = N;
      PopulationEngine eng(be, moved, sel, nc, {}, o);
      eng.begin_step(3, N, nc.sigma);
      eng.update(fit, 0, size_t(N / 2), nullptr, 1.0);
      eng.to_host(moved);
    }
    double worst = 0;
    for (int pid : sel.ids()) {
      const size_t n = m.params[size_t(pid)].numel();
      std::vector<double> want(n, 0.0);
      for (int i = 0; i < N; i++) {
        std::vector<float> E;
        if (sel.lowrank[size_t(pid)]) {
          E = materialise(m, pid, nc, 3, i);
        } else {
          E.resize(n);
          fill_vector_noise(nc, uint32_t(pid), 3, uint32_t(i), n, E.data());
          for (auto& e : E) e *= vector_scale(nc, uint32_t(i));
        }
        for (size_t j = 0; j < n; j++) want[j] += fit[size_t(i)] * double(E[j]) / std::sqrt(double(N));
      }
      const auto &w0 = m.params[size_t(pid)].data, &w1 = moved.params[size_t(pid)].data;
      for (size_t j = 0; j < n; j++) worst = std::max(worst, std::fabs(want[j] - (double(w1[j]) - w0[j])));
    }
    CHECK(worst < 1e-6);
  }
}

namespace {
double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return ab / std::sqrt(aa * bb);
}

// Mean cosine between the ES update and the true gradient C of the linear objective <C, W>,
// with rank r (r = 0: full-rank Gaussian noise, OpenES).
double es_cosine(const Model& m, int pid, int r, int N, int trials) {
  const Param& p = m.params[size_t(pid)];
  std::mt19937 g(99);
  std::normal_distribution<double> nd;
  std::vector<double> C(p.numel());
  for (auto& c : C) c = nd(g);
  double total = 0;
  for (int t = 0; t < trials; t++) {
    NoiseConfig nc;
    nc.seed = uint64_t(1000 + t), nc.rank = std::max(r, 1), nc.sigma = 0.01f;
    std::vector<double> upd(p.numel(), 0.0);
    for (int i = 0; i < N; i++) {
      std::vector<float> E;
      if (r > 0) {
        E = materialise(m, pid, nc, 0, i);
      } else {
        E.resize(p.numel());
        fill_vector_noise(nc, uint32_t(pid), 0, uint32_t(i), p.numel(), E.data());
        for (auto& e : E) e *= vector_scale(nc, uint32_t(i));
      }
      double f = 0;
      for (size_t j = 0; j < E.size(); j++) f += C[j] * E[j];
      for (size_t j = 0; j < E.size(); j++) upd[j] += f * E[j];
    }
    total += cosine(upd, C);
  }
  return total / trials;
}
}  // namespace

TEST_CASE("for a linear objective the update points along the gradient", "[eggroll][estimator]") {
  ModelConfig c = small_cfg();
  c.n_embd = 64, c.n_head = 1, c.ffn = 256, c.dw = 4;
  Model m = Model::random(c, 6);
  const int pid = m.layers[0].w1;  // 64 x 4: 256 dimensions
  const double cos1 = es_cosine(m, pid, 1, 8192, 1);
  INFO("cos r=1, N=8192: " << cos1);
  CHECK(cos1 > 0.9);
  // the low-rank estimate approaches the full-rank one as r grows
  const double full = es_cosine(m, pid, 0, 256, 4);
  const double r1 = es_cosine(m, pid, 1, 256, 4), r4 = es_cosine(m, pid, 4, 256, 4),
               r16 = es_cosine(m, pid, 16, 256, 4);
  INFO("N=256: full " << full << " r1 " << r1 << " r4 " << r4 << " r16 " << r16);
  CHECK(std::fabs(r16 - full) < std::fabs(r1 - full));
  CHECK(std::fabs(r16 - full) < 0.1);
}

TEST_CASE("parameter selection by glob patterns", "[eggroll]") {
  Model m = Model::random(small_cfg(), 1);
  auto sel = select_params(m, {"*"}, {"emb.weight", "head.weight"}, true);
  CHECK_FALSE(sel.lowrank[size_t(m.emb)]);
  CHECK_FALSE(sel.lowrank[size_t(m.head)]);
  CHECK(sel.lowrank[size_t(m.layers[0].w1)]);
  CHECK(sel.lowrank[size_t(m.layers[1].ffn_value)]);
  CHECK_FALSE(sel.full[size_t(m.layers[0].x_r)]);
  auto sel2 = select_params(m, {"*"}, {}, false);
  CHECK(sel2.full[size_t(m.layers[0].x_r)]);
  CHECK(sel2.full[size_t(m.layers[0].r_k)]);
  REQUIRE_THROWS_WITH(select_params(m, {"*"}, {"blocks.*.att.nothing"}, true), Catch::Contains("blocks.*.att.nothing"));
  CHECK(glob_match("blocks.*.att.?1", "blocks.10.att.w1"));
  CHECK_FALSE(glob_match("blocks.*.att.?1", "blocks.10.att.w2"));
}

TEST_CASE("optimizers and schedules", "[eggroll][optim]") {
  // the engine's optimizer on one matrix (tests/test_population_engine.cpp checks every formula)
  const Model m = Model::random(small_cfg(), 2);
  auto sel = select_params(m, {"blocks.0.att.w1"}, {}, true);
  const int pid = m.layers[0].w1;
  const std::vector<float> fit = {1.f, -1.f, 0.5f, 2.f};
  auto one_step = [&](OptimConfig oc, double lr, Model& out) {
    out = m;
    CpuBackend be;
    PopulationEngineOptions o;
    o.max_rows = 4;
    NoiseConfig nc;
    nc.seed = 1, nc.rank = 2, nc.sigma = 0.1f;
    PopulationEngine eng(be, out, sel, nc, oc, o);
    eng.begin_step(0, 4, nc.sigma);
    const StepReport r = eng.update(fit, 0, 2, nullptr, lr);
    eng.to_host(out);
    CHECK(eng.optimizer_steps() == 1);
    return r;
  };
  Model a, b, c;
  const StepReport sgd = one_step({OptimKind::SGD}, 0.1, a);
  CHECK(sgd.update_norm == Approx(0.1 * sgd.grad_norm).epsilon(1e-5));
  // Adam's first step moves every weight by lr (the sign of g), whatever |g| (>> eps)
  one_step({OptimKind::Adam}, 0.01, b);
  const auto &w0 = m.params[size_t(pid)].data, &wb = b.params[size_t(pid)].data, &wa = a.params[size_t(pid)].data;
  for (size_t j = 0; j < w0.size(); j += 97) {
    CHECK(std::fabs(wb[j] - w0[j]) == Approx(0.01).epsilon(1e-3));
    CHECK((wb[j] > w0[j]) == (wa[j] > w0[j]));  // the direction SGD takes
  }
  // clipping: the update norm of SGD with lr 1 is the clip norm
  OptimConfig clipped{OptimKind::SGD};
  clipped.clip_update_norm = 1e-3;
  const StepReport r2 = one_step(clipped, 1.0, c);
  CHECK(r2.grad_norm > 1e-3);
  CHECK(r2.update_norm == Approx(1e-3).epsilon(1e-4));
  CHECK(schedule_value(ScheduleKind::Linear, 1.0, 0.0, 0, 11) == 1.0);
  CHECK(schedule_value(ScheduleKind::Linear, 1.0, 0.0, 10, 11) == Approx(0.0));
  CHECK(schedule_value(ScheduleKind::Multiplicative, 2.0, 0.5, 3, 10) == Approx(0.25));
}

TEST_CASE("the kept noise cache follows epoch buckets (noise_reuse)", "[eggroll]") {
  Model m = Model::random(small_cfg(), 9);
  auto sel = select_params(m, {"*"}, {}, true);
  const int pid = m.layers[1].Wv;
  const Param& P = m.params[size_t(pid)];
  for (int reuse : {0, 1, 2}) {
    NoiseConfig nc;
    nc.seed = 4, nc.rank = 2, nc.sigma = 0.1f, nc.noise_reuse = reuse;
    Perturbation keep(m, sel, nc, NoiseCache::Keep), regen(m, sel, nc, NoiseCache::Regenerate);
    std::vector<float> X(size_t(4 * P.cols), 0.5f);
    std::vector<int32_t> members = {0, 1, 2, 3};
    for (uint64_t epoch : {0, 1, 2, 3, 5}) {
      INFO("noise_reuse " << reuse << " epoch " << epoch);
      keep.begin_step(epoch, 4);
      regen.begin_step(epoch, 4);
      std::vector<float> a(size_t(4 * P.rows), 0.f), b(size_t(4 * P.rows), 0.f);
      const PerturbationView &k = keep.view(), &g = regen.view();
      REQUIRE(k.cache_of(pid) != nullptr);
      REQUIRE(g.cache_of(pid) == nullptr);
      ref::lowrank_add(k.noise, uint32_t(pid), P.rows, P.cols, false, X.data(), a.data(), members.data(), 4,
                       k.cache_of(pid));
      ref::lowrank_add(g.noise, uint32_t(pid), P.rows, P.cols, false, X.data(), b.data(), members.data(), 4, nullptr);
      CHECK(a == b);
    }
    // a new epoch with as many pairs refills the same arrays; another number of pairs allocates
    // arrays of its size, and both still give the regenerated factors
    const float* before = keep.view().cache_of(pid);
    keep.begin_step(7, 3);  // 3 directions: still 2 pairs
    CHECK(keep.view().cache_of(pid) == before);
    for (int dirs : {6, 3}) {
      INFO("noise_reuse " << reuse << " directions " << dirs);
      keep.begin_step(8, dirs);
      regen.begin_step(8, dirs);
      std::vector<float> X6(size_t(dirs * P.cols), 0.25f), a(size_t(dirs * P.rows), 0.f), b(size_t(dirs * P.rows), 0.f);
      std::vector<int32_t> mem(static_cast<size_t>(dirs));
      for (int i = 0; i < dirs; i++) mem[size_t(i)] = i;
      ref::lowrank_add(keep.view().noise, uint32_t(pid), P.rows, P.cols, false, X6.data(), a.data(), mem.data(), dirs,
                       keep.view().cache_of(pid));
      ref::lowrank_add(regen.view().noise, uint32_t(pid), P.rows, P.cols, false, X6.data(), b.data(), mem.data(), dirs,
                       nullptr);
      CHECK(a == b);
    }
  }
}
