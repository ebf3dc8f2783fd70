// The CPU forward against the float64 reference fixtures, batch invariance, presets.
#include <catch2/catch.hpp>
#include <cmath>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/checkpoint.h"
#include "core/cpu_backend.h"
#include "core/ops/linear.h"
#include "fixtures.h"
#include "rwkv/backend_model.h"
#include "rwkv/forward.h"
#include "rwkv/decoder.h"
#include "rwkv/model.h"

using namespace eggroll;

TEST_CASE("fixture logits match the float64 reference at every step", "[forward]") {
  for (const auto& name : test::rwkv_fixtures()) {
    INFO(name);
    auto meta = test::read_json(test::fixture("rwkv7/" + name + ".json"));
    Model m = Model::load(test::fixture("rwkv7/" + name + ".pth"));
    REQUIRE(m.cfg.n_layer == meta["n_layer"].get<int>());
    REQUIRE(m.cfg.n_embd == meta["n_embd"].get<int>());
    REQUIRE(m.cfg.vocab == meta["vocab"].get<int>());
    auto ref = test::read_f32(test::fixture("rwkv7/" + meta["logits_file"].get<std::string>()));
    auto tokens = meta["tokens"].get<std::vector<int32_t>>();
    REQUIRE(ref.size() == tokens.size() * size_t(m.cfg.vocab));
    Forward fwd(m);
    BatchState st(m.cfg, 1);
    std::vector<float> lg(size_t(m.cfg.vocab));
    const int slot = 0;
    double worst = 0;
    for (size_t t = 0; t < tokens.size(); t++) {
      fwd.step(std::span(&tokens[t], 1), std::span(&slot, 1), st, lg.data());
      for (size_t v = 0; v < lg.size(); v++)
        worst = std::max(worst, double(std::fabs(lg[v] - ref[t * lg.size() + v])));
    }
    CHECK(worst < 1e-3);
    // the final WKV state agrees too
    double abs_sum = 0;
    for (float s : st.wkv) abs_sum += std::fabs(s);
    CHECK(abs_sum == Approx(meta["final_wkv_state_abs_sum"].get<double>()).epsilon(1e-4));
  }
}

TEST_CASE("greedy continuation matches the reference", "[forward][generate]") {
  for (const auto& name : test::rwkv_fixtures()) {
    INFO(name);
    auto meta = test::read_json(test::fixture("rwkv7/" + name + ".json"));
    Model m = Model::load(test::fixture("rwkv7/" + name + ".pth"));
    auto want = meta["greedy_continuation"].get<std::vector<int32_t>>();
    Forward fwd(m);
    GenOptions opt;
    opt.max_tokens = int(want.size());
    opt.stop_on_eod = false;
    GenRequest rq{meta["greedy_prompt"].get<std::vector<int32_t>>(), 0, 0};
    auto res = generate(fwd, std::span(&rq, 1), opt);
    CHECK(res[0].tokens == want);
    CHECK(res[0].stop_reason == "length");
  }
}

TEST_CASE("a batch gives each member the logits it gets alone", "[forward][batch]") {
  Model m = Model::load(test::fixture("rwkv7/rand-l3-d256-v1024.pth"));
  const int V = m.cfg.vocab;
  for (int B : {2, 7, 64}) {
    INFO("B = " << B);
    const int T = 5;
    auto tok = [&](int member, int t) { return int32_t((member * 131 + t * 17 + 3) % V); };
    // alone
    std::vector<float> alone(size_t(B) * T * V);
    {
      Forward fwd(m);
      for (int i = 0; i < B; i++) {
        BatchState st(m.cfg, 1);
        const int slot = 0;
        for (int t = 0; t < T; t++) {
          int32_t x = tok(i, t);
          fwd.step(std::span(&x, 1), std::span(&slot, 1), st, alone.data() + (size_t(i) * T + t) * V);
        }
      }
    }
    // together, slots permuted so the row order differs from the slot order
    Forward fwd(m);
    BatchState st(m.cfg, B);
    std::vector<float> lg(size_t(B) * V);
    double worst = 0;
    for (int t = 0; t < T; t++) {
      std::vector<int32_t> toks;
      std::vector<int> slots;
      for (int r = 0; r < B; r++) {
        int i = (r * 5 + t) % B;  // a different permutation each step
        if (B % 5 == 0) i = r;
        slots.push_back(i);
        toks.push_back(tok(i, t));
      }
      fwd.step(toks, slots, st, lg.data());
      for (int r = 0; r < B; r++)
        for (int v = 0; v < V; v++)
          worst = std::max(worst, double(std::fabs(lg[size_t(r) * V + v] - alone[(size_t(slots[r]) * T + t) * V + v])));
    }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("only the rows asked for get logits", "[forward]") {
  Model m = Model::load(test::fixture("rwkv7/tiny-rwkv7-834k.pth"));
  Forward fwd(m);
  BatchState a(m.cfg, 3), b(m.cfg, 3);
  std::vector<int32_t> toks = {72, 101, 108};
  std::vector<int> slots = {0, 1, 2};
  std::vector<float> all(3 * 256), some(256);
  std::vector<uint8_t> need = {0, 1, 0};
  fwd.step(toks, slots, a, all.data());
  fwd.step(toks, slots, b, some.data(), need);
  for (int v = 0; v < 256; v++) CHECK(some[size_t(v)] == all[256 + size_t(v)]);
  CHECK(a.wkv == b.wkv);
}

TEST_CASE("presets have the published parameter counts", "[model]") {
  CHECK(std::llround(double(ModelConfig::preset("0.1b").param_count()) / 1e6) == 191);
  CHECK(std::llround(double(ModelConfig::preset("0.4b").param_count()) / 1e6) == 451);
  CHECK(std::llround(double(ModelConfig::preset("1.5b").param_count()) / 1e8) == 15);
  CHECK(std::llround(double(ModelConfig::preset("2.9b").param_count()) / 1e8) == 29);
  CHECK(std::llround(double(ModelConfig::preset("7.2b").param_count()) / 1e8) == 72);
  CHECK(std::llround(double(ModelConfig::preset("13.3b").param_count()) / 1e8) == 133);
}

TEST_CASE("a random model round-trips through its state dict and infers its own config", "[model]") {
  ModelConfig cfg = ModelConfig::preset("tiny", 300);
  Model m = Model::random(cfg, 7);
  StateDict sd = m.to_state_dict(DType::F32);
  Model back = Model::from_state_dict(sd, "memory");
  CHECK(back.cfg.describe() == cfg.describe());
  for (size_t i = 0; i < m.params.size(); i++) CHECK(back.params[i].data == m.params[i].data);
  CHECK(Model::random(cfg, 7).params[5].data == m.params[5].data);
  CHECK(Model::random(cfg, 8).params[5].data != m.params[5].data);
}

TEST_CASE("missing or mis-shaped tensors are named in the error", "[model]") {
  StateDict sd = Model::random(ModelConfig::preset("tiny", 300), 1).to_state_dict(DType::F32);
  StateDict missing = sd;
  missing.tensors.erase(missing.tensors.begin() + 10);
  const std::string gone = sd.tensors[10].name;
  REQUIRE_THROWS_WITH(Model::from_state_dict(missing, "x.pth"), Catch::Contains("x.pth") && Catch::Contains(gone));
  StateDict bad = sd;
  bad.find("blocks.1.att.key.weight")->shape = {64, 256};
  REQUIRE_THROWS_WITH(Model::from_state_dict(bad, "y.pth"), Catch::Contains("blocks.1.att.key.weight"));
  StateDict extra = sd;
  extra.add(Tensor::from_f32("blocks.0.att.nonsense", {1}, std::vector<float>{1.f}.data(), DType::F32));
  REQUIRE_THROWS_WITH(Model::from_state_dict(extra, "z.pth"), Catch::Contains("nonsense"));
}

TEST_CASE("the decoder's timed greedy mode gives generate()'s greedy tokens", "[forward][generate]") {
  const Model m = Model::random(ModelConfig::preset("tiny", 300), 5);
  Forward fwd(m);
  Decoder dec(fwd.backend(), fwd.weights(), 8);
  const std::vector<int32_t> first = {1, 7, 42, 299, 3};
  const int steps = 6;
  dec.reset(int(first.size()));
  const std::vector<int32_t> last = dec.greedy_steps(first, steps);
  GenOptions opt;
  opt.max_tokens = steps;
  opt.stop_on_eod = false;
  std::vector<GenRequest> reqs;
  for (int32_t t : first) reqs.push_back({{t}, 0, 0});
  const auto res = generate(fwd, reqs, opt);
  REQUIRE(res.size() == first.size());
  for (size_t i = 0; i < first.size(); i++) {
    REQUIRE(res[i].tokens.size() == size_t(steps));
    CHECK(last[i] == res[i].tokens.back());
  }
  CHECK_THROWS_AS(dec.greedy_steps(std::vector<int32_t>(9, 1), 1), std::invalid_argument);
  CHECK_THROWS_AS(dec.greedy_steps(std::vector<int32_t>{300}, 1), std::invalid_argument);

  // One step at a time, each step's tokens fed back, alternating with a second decoder on the same
  // backend (bench es --interleave steps): the same tokens as the steps in one call.
  Decoder a(fwd.backend(), fwd.weights(), 8), b(fwd.backend(), fwd.weights(), 8);
  a.reset(int(first.size()));
  b.reset(3);
  std::vector<int32_t> ta = first, tb = {5, 6, 7};
  for (int t = 0; t < steps; t++) {
    ta = a.greedy_steps(ta, 1);
    tb = b.greedy_steps(tb, 1);
  }
  CHECK(ta == last);
  Decoder c(fwd.backend(), fwd.weights(), 8);
  c.reset(3);
  CHECK(tb == c.greedy_steps(std::vector<int32_t>{5, 6, 7}, steps));
}

namespace {
// The bf16 products computed in float64: the same roundings (bf16 weights, inputs rounded to
// bf16) with exact sums; every other op is the CPU backend's. Matrices must not be prepared.
class Bf16Float64Products final : public CpuBackend {
 public:
  void linear(const WeightView& W, bool xp, const float* X, float* Y, int64_t B) override {
    if (W.dtype != DType::BF16) return CpuBackend::linear(W, xp, X, Y, B);
    const int64_t in = xp ? W.rows : W.cols, out = xp ? W.cols : W.rows;
    const auto* w = static_cast<const uint16_t*>(W.data);
    for (int64_t r = 0; r < B; r++)
      for (int64_t o = 0; o < out; o++) {
        double s = 0;
        for (int64_t k = 0; k < in; k++)
          s += double(round_to_bf16(X[r * in + k])) * bf16_to_f32(xp ? w[k * out + o] : w[o * in + k]);
        Y[r * out + o] = float(s);
      }
  }
};

// Logits of `tokens` fed one at a time to one member of a placed model.
std::vector<float> step_logits(Backend& be, const BackendModel& bm, const std::vector<int32_t>& tokens) {
  const ModelConfig& cfg = bm.weights().cfg;
  ModelStep step(be, bm.weights(), 1);
  BackendState st(be, cfg, 1);
  const int32_t slot = 0;
  std::vector<float> out(tokens.size() * size_t(cfg.vocab));
  for (size_t t = 0; t < tokens.size(); t++)
    step.step(&tokens[t], &slot, &slot, 1, st.view(), out.data() + t * size_t(cfg.vocab));
  return out;
}

// The same with m's matrices placed in `dt` (prepared or not).
std::vector<float> step_logits(Backend& be, const Model& m, DType dt, bool prepare,
                               const std::vector<int32_t>& tokens) {
  BackendModel bm(be, m, dt);
  if (prepare) bm.prepare_products();
  return step_logits(be, bm, tokens);
}
}  // namespace

// The float64 products differ from the kernel's fp32 sums by ~1e-7 relative; where a product's
// output later lands within that distance of a bf16 rounding boundary (about 1 element in 10^4),
// the next product's input rounds the other way (a 2^-8 relative step) and the recurrent state
// carries the difference on. So the first step of each sequence is held to 1e-4 of the logit
// range everywhere; after that, the trained fixture stays within 1e-4 and the random one (larger
// weights, seen to diverge at its 4th token) within 1e-2.
TEST_CASE("bf16 matrices: logits against the float64 products of the same roundings", "[forward][bf16]") {
  for (const auto& name : test::rwkv_fixtures()) {
    INFO(name);
    auto meta = test::read_json(test::fixture("rwkv7/" + name + ".json"));
    Model m = Model::load(test::fixture("rwkv7/" + name + ".pth"));
    const auto tokens = meta["tokens"].get<std::vector<int32_t>>();
    const size_t V = size_t(m.cfg.vocab);
    CpuBackend cpu;
    Bf16Float64Products exact;
    const auto got = step_logits(cpu, m, DType::BF16, true, tokens);
    const auto want = step_logits(exact, m, DType::BF16, false, tokens);
    const auto golden = test::read_f32(test::fixture("rwkv7/" + meta["logits_file"].get<std::string>()));
    double first = 0, worst = 0, worst_golden = 0;
    for (size_t t = 0; t < tokens.size(); t++) {
      const float* w = want.data() + t * V;
      const auto [lo, hi] = std::minmax_element(w, w + V);
      for (size_t v = 0; v < V; v++) {
        const double e = std::fabs(double(got[t * V + v]) - w[v]) / double(*hi - *lo);
        worst = std::max(worst, e);
        if (t == 0) first = std::max(first, e);
        worst_golden = std::max(worst_golden, std::fabs(double(got[t * V + v]) - golden[t * V + v]));
      }
    }
    CHECK(first < 1e-4);
    CHECK(worst < (name.rfind("tiny", 0) == 0 ? 1e-4 : 1e-2));
    // against the float64 goldens of the fp32 model: reported (bf16 rounds the weights)
    WARN(name << ": bf16 logits vs the bf16-rounding float64 products: first token " << first << ", all "
              << tokens.size() << " tokens " << worst
              << " of the logit range; vs the fp32 model's float64 goldens: largest difference " << worst_golden);
  }
}

TEST_CASE("Model::save writes, one tensor at a time, the file of save_checkpoint(to_state_dict)", "[model]") {
  const auto dir = test::temp_root("forward");
  auto bytes = [](const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(f), {});
  };
  const Model m = Model::random(ModelConfig::preset("tiny", 300), 4);
  for (const std::string ext : {".pth", ".safetensors"})
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      INFO(ext << " " << dtype_name(dt));
      m.save((dir / ("streamed" + ext)).string(), dt);
      save_checkpoint((dir / ("whole" + ext)).string(), m.to_state_dict(dt));
      CHECK(bytes(dir / ("streamed" + ext)) == bytes(dir / ("whole" + ext)));
    }
  // a model holding kept bits writes the values it was loaded with, in any dtype
  m.save((dir / "src.safetensors").string(), DType::BF16);
  const Model kept = Model::load((dir / "src.safetensors").string(), Model::MatrixBits::Keep);
  const Model wide = Model::load((dir / "src.safetensors").string());
  for (DType dt : {DType::BF16, DType::F32}) {
    kept.save((dir / "a.safetensors").string(), dt);
    wide.save((dir / "b.safetensors").string(), dt);
    CHECK(bytes(dir / "a.safetensors") == bytes(dir / "b.safetensors"));
  }
  CHECK(bytes(dir / "a.safetensors").size() > 0);
}

TEST_CASE("16-bit matrices kept as their bits place the weights the widened model places", "[model][bf16]") {
  // the bf16 fixture, and a random tiny model written as f16
  const std::string f16 = (test::temp_root("forward") / "tiny-f16.safetensors").string();
  Model::random(ModelConfig::preset("tiny", 300), 3).save(f16, DType::F16);
  for (const std::string& path : {test::fixture("rwkv7/rand-l3-d256-v1024.pth"), f16}) {
    INFO(path);
    const Model wide = Model::load(path);
    const Model whole = Model::from_state_dict(load_checkpoint(path), path);  // not streamed
    Model kept = Model::load(path, Model::MatrixBits::Keep);
    REQUIRE(kept.params.size() == wide.params.size());
    for (size_t pid = 0; pid < wide.params.size(); pid++) {
      const Param &w = wide.params[pid], &k = kept.params[pid];
      INFO(w.name);
      CHECK(whole.params[pid].data == w.data);
      CHECK(w.bits.empty());
      if (w.is_matrix) {  // the file's bits, which widen to the values
        REQUIRE(k.data.empty());
        REQUIRE(k.bits.size() == w.data.size() * 2);
        CHECK(k.bits_dtype == wide.source_dtype);
        std::vector<float> v(w.data.size());
        convert_to_f32(k.bits_dtype, k.bits.data(), v.data(), v.size());
        CHECK(v == w.data);
      } else {
        CHECK(k.bits.empty());
        CHECK(k.data == w.data);
      }
    }
    // placed in bf16 (one matrix with an fp32 master), and in fp32: the same arrays either way
    std::vector<uint8_t> masters(wide.params.size(), 0);
    masters[size_t(wide.layers[0].Wk)] = 1;
    CpuBackend be;
    for (DType dt : {DType::BF16, DType::F32}) {
      BackendModel a(be, wide, dt, &masters), b(be, kept, dt, &masters);
      for (size_t pid = 0; pid < wide.params.size(); pid++) {
        const WeightView &va = a.weights().params[pid], &vb = b.weights().params[pid];
        INFO(wide.params[pid].name << " in " << dtype_name(dt));
        REQUIRE(va.dtype == vb.dtype);
        const size_t bytes = size_t(va.rows * va.cols) * dtype_size(va.dtype);
        CHECK(std::memcmp(va.data, vb.data, bytes) == 0);
        if (a.master(int(pid))) {
          REQUIRE(b.master(int(pid)));
          CHECK(std::memcmp(a.master(int(pid)), b.master(int(pid)), size_t(va.rows * va.cols) * 4) == 0);
        }
      }
    }
    // consumed: the host copies are gone once placed, and the step's logits are the widened model's
    const std::vector<int32_t> tokens = {1, 5, 9};
    const auto want = step_logits(be, wide, DType::BF16, true, tokens);
    BackendModel c(be, std::move(kept), DType::BF16);
    for (const Param& p : kept.params) {
      CHECK(p.data.empty());
      CHECK(p.bits.empty());
    }
    CHECK(kept.cfg.describe() == wide.cfg.describe());
    c.prepare_products();
    CHECK(step_logits(be, c, tokens) == want);
  }
}

TEST_CASE("bf16 matrices: greedy continuation against the fp32 model's golden", "[forward][bf16][generate]") {
  for (const auto& name : test::rwkv_fixtures()) {
    INFO(name);
    auto meta = test::read_json(test::fixture("rwkv7/" + name + ".json"));
    Model m = Model::load(test::fixture("rwkv7/" + name + ".pth"));
    const auto want = meta["greedy_continuation"].get<std::vector<int32_t>>();
    auto prompt = meta["greedy_prompt"].get<std::vector<int32_t>>();
    CpuBackend cpu;
    BackendModel bm(cpu, m, DType::BF16);
    bm.prepare_products();
    // the prompt, then greedy steps
    const int32_t slot = 0;
    ModelStep step(cpu, bm.weights(), 1);
    BackendState st(cpu, m.cfg, 1);
    std::vector<float> lg(size_t(m.cfg.vocab));
    std::vector<int32_t> got;
    int32_t tok = prompt[0];
    for (size_t t = 0; t < prompt.size() + want.size() - 1; t++) {
      tok = t < prompt.size() ? prompt[t] : got.back();
      step.step(&tok, &slot, &slot, 1, st.view(), lg.data());
      if (t + 1 >= prompt.size()) got.push_back(int32_t(std::max_element(lg.begin(), lg.end()) - lg.begin()));
    }
    size_t same = 0;
    while (same < want.size() && got[same] == want[same]) same++;
    WARN(name << ": bf16 greedy continuation equals the fp32 golden for " << same << " of " << want.size()
              << " tokens");
    CHECK(got.size() == want.size());
  }
}
