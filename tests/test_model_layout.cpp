// The header-inline model layout (rwkv/model_layout.h) and random-init element function
// (core/ops/init.h) that the device-side init (cuda/init.h) shares with
// Model::random, and the CPU references of the device init / OpenES kernels. The kernels
// themselves are checked against these references by tests/gpu_init_main.cpp on a GPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "cuda/init.h"
#include "es/noise.h"
#include "rwkv/model.h"
#include "core/ops/init.h"
#include "rwkv/model_layout.h"

using namespace eggroll;

TEST_CASE("the layout skeleton has Model::random's names, shapes and ids, and no data", "[model][layout]") {
  for (const char* preset : {"tiny", "0.1b"}) {
    const ModelConfig cfg = ModelConfig::preset(preset);
    const Model lay = model_layout(cfg);
    const Model m = Model::random(cfg, 3);
    REQUIRE(lay.params.size() == m.params.size());
    uint64_t total = 0;
    for (size_t i = 0; i < m.params.size(); i++) {
      const Param &a = lay.params[i], &b = m.params[i];
      CHECK(a.name == b.name);
      CHECK(a.shape == b.shape);
      CHECK(a.rows == b.rows);
      CHECK(a.cols == b.cols);
      CHECK(a.is_matrix == b.is_matrix);
      CHECK(a.data.empty());
      CHECK(uint64_t(a.rows * a.cols) == b.numel());
      total += uint64_t(a.rows * a.cols);
    }
    CHECK(total == cfg.param_count());
    CHECK(lay.emb == m.emb);
    CHECK(lay.head == m.head);
    CHECK(lay.ln0_w == m.ln0_w);
    CHECK(lay.lnout_b == m.lnout_b);
    REQUIRE(lay.layers.size() == m.layers.size());
    for (size_t l = 0; l < m.layers.size(); l++) {
      CHECK(lay.layers[l].Wr == m.layers[l].Wr);
      CHECK(lay.layers[l].v1 == m.layers[l].v1);
      CHECK(lay.layers[l].v0 == m.layers[l].v0);
      CHECK(lay.layers[l].ffn_value == m.layers[l].ffn_value);
      CHECK(lay.layers[l].lnx_b == m.layers[l].lnx_b);
    }
  }
}

TEST_CASE("Model::random is init_value over init_range, element by element", "[model][layout]") {
  const ModelConfig cfg = ModelConfig::preset("tiny");
  const uint64_t seed = 11;
  const Model m = Model::random(cfg, seed);
  for (size_t pid = 0; pid < m.params.size(); pid++) {
    const Param& p = m.params[pid];
    float lo, hi;
    init_range(p.name, p.shape, lo, hi);
    std::vector<float> want(p.numel());
    ref::init_uniform(want.data(), int64_t(want.size()), init_param_base(seed, pid), lo, hi);
    size_t same = 0, inside = 0;
    for (size_t j = 0; j < want.size(); j++) {
      same += std::memcmp(&want[j], &p.data[j], 4) == 0;
      inside += p.data[j] >= lo && p.data[j] <= hi;
    }
    INFO(p.name);
    CHECK(same == want.size());
    CHECK(inside == want.size());
  }
}

TEST_CASE("init ranges keep the documented scales", "[model][layout]") {
  const ModelConfig c = ModelConfig::preset("0.1b");
  const Model lay = model_layout(c);
  auto range = [&](const std::string& name) {
    for (const auto& q : lay.params)
      if (q.name == name) {
        float lo, hi;
        init_range(q.name, q.shape, lo, hi);
        return std::pair<float, float>(lo, hi);
      }
    FAIL("no parameter " << name);
    return std::pair<float, float>(0.f, 0.f);
  };
  const double C = c.n_embd;
  CHECK(range("emb.weight").second == Approx(std::sqrt(3.0)));
  CHECK(range("head.weight").second == Approx(std::sqrt(3.0 / C)));
  CHECK(range("blocks.1.att.key.weight").second == Approx(std::sqrt(3.0 / C)));
  CHECK(range("blocks.1.att.output.weight").second == Approx(0.5 * std::sqrt(3.0 / C)));
  CHECK(range("blocks.1.ffn.value.weight").second == Approx(0.5 * std::sqrt(3.0 / c.ffn)));
  // the LoRA matrices ([C, D] / [D, C], used as x @ P) scale by their second dimension too
  CHECK(range("blocks.1.att.w2").second == Approx(0.1 * std::sqrt(3.0 / C)));
  CHECK(range("blocks.1.att.w1").first == Approx(-std::sqrt(3.0 / c.dw)));
  CHECK(range("blocks.1.ln1.weight") == std::pair<float, float>(0.8f, 1.2f));
  CHECK(range("blocks.1.att.ln_x.bias") == std::pair<float, float>(-0.1f, 0.1f));
  CHECK(range("blocks.1.att.w0") == std::pair<float, float>(-3.f, 1.f));
  CHECK(range("blocks.1.att.r_k") == std::pair<float, float>(-0.5f, 0.5f));
  CHECK(range("blocks.1.att.x_r") == std::pair<float, float>(0.f, 1.f));
}

TEST_CASE("the OpenES materialisation reference is W + scale * eps", "[noise][openes]") {
  NoiseConfig nc;
  nc.seed = 5, nc.sigma = 0.01f;
  const int64_t n = 1001;
  std::vector<float> base(static_cast<size_t>(n)), eps(static_cast<size_t>(n)), out(static_cast<size_t>(n));
  ref::init_uniform(base.data(), n, 99, -1.f, 1.f);
  for (NoiseDist d : {NoiseDist::Gaussian, NoiseDist::Rademacher}) {
    nc.dist = d;
    const uint32_t member = 3;
    const NoiseKey key = noise_key(nc, 7, 0, member);
    const float c = vector_scale(nc, member);
    CHECK(c == Approx(-0.01f));
    fill_noise(key, d, 0, size_t(n), eps.data());
    ref::perturb_full(key, d, c, base.data(), out.data(), n);
    for (int64_t j = 0; j < n; j++) REQUIRE(out[size_t(j)] == std::fma(c, eps[size_t(j)], base[size_t(j)]));
    std::vector<uint16_t> b16(static_cast<size_t>(n)), o16(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; j++) b16[size_t(j)] = f32_to_bf16(base[size_t(j)]);
    ref::perturb_full_bf16(key, d, c, b16.data(), o16.data(), n);
    for (int64_t j = 0; j < n; j++)
      REQUIRE(o16[size_t(j)] == f32_to_bf16(std::fma(c, eps[size_t(j)], bf16_to_f32(b16[size_t(j)]))));
  }
}
