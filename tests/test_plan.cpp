// The device-memory planner (app/plan.h, `eggroll plan`): hand-computed numbers for the 7.2B
// preset at population 1024, headers read without data, refusal when the plan does not fit.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "core/checkpoint.h"
#include "core/error.h"
#include "fixtures.h"
#include "app/plan.h"
#include "rwkv/model.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

PlanRequest req_72b(int64_t directions, int64_t prompts) {
  PlanRequest r;
  r.model = ModelConfig::preset("7.2b", 65536);
  r.model_source = "preset 7.2b";
  r.weight_dtype = DType::BF16;
  r.directions = directions;
  r.prompts_per_step = prompts;
  r.rank = 1;
  r.noise_cache_keep = true;
  r.freeze_nonlora = true;
  r.optim = "sgd";
  r.prompt_tokens = 256;
  r.thinking_length = 0;
  r.answer_length = 32;
  r.device_gib = 139.0;
  return r;
}

uint64_t item(const Plan& p, const std::string& name) {
  const PlanItem* it = p.item(name);
  REQUIRE(it != nullptr);
  return it->bytes;
}

int run_status(const std::string& cmd) {
  const int s = std::system(cmd.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

}  // namespace

TEST_CASE("7.2B at population 1024: every item equals the hand computation", "[plan]") {
  const Plan p = make_plan(req_72b(1024, 1));
  // L 32, C 4096, H 64, V 65536, ffn 16384, Dw 128, Da 128, Dv 96 (not in layer 0), Dg 480
  const uint64_t L = 32, C = 4096, V = 65536, F = 16384, G = 1024;
  CHECK(p.generations == 1024);
  CHECK(p.generations_per_device == 1024);
  CHECK(p.pairs == 512);
  CHECK(p.token_budget == 288);

  // state: WKV L x H x 64 x 64 fp32 = 33.6 MB per member (7.2b: 32 x 64 heads), + two token shifts
  CHECK(p.wkv_bytes_per_generation == 33554432);
  CHECK(p.state_bytes_per_generation == 33554432 + L * 2 * C * 4);
  CHECK(p.state_bytes_per_generation == 34603008);
  CHECK(item(p, "states") == G * 34603008ull);  // 35.4 GB

  // parameters: vectors 20C (layer 0 with ln0, no v0) + 31 x 19C + ln_out 2C = 611 C
  const uint64_t vec = 611 * C;
  const uint64_t layer = 4 * C * C + 2 * C * 128 + 2 * C * 128 + 2 * C * 480 + 2 * C * 96 + 2 * C * F;
  const uint64_t layer0 = layer - 2 * C * 96;
  const uint64_t mat = 2 * V * C + layer0 + 31 * layer;
  CHECK(mat == 7196639232ull);
  CHECK(p.params == mat + vec);
  CHECK(p.params == ModelConfig::preset("7.2b", 65536).param_count());
  CHECK(item(p, "weights") == mat * 2 + vec * 4);
  // updated: every matrix but emb / head (vectors frozen); fp32 master of them with bf16 weights
  const uint64_t upd = mat - 2 * V * C;
  CHECK(p.updated_params == upd);
  CHECK(item(p, "fp32 master") == upd * 4);
  CHECK(item(p, "optimizer state") == 0);  // sgd

  // noise cache: 512 pairs x sum (m + n) over the perturbed matrices x 4 B (r = 1)
  const uint64_t per_layer = 4 * (C + C) + 2 * (C + 128) + 2 * (C + 128) + 2 * (C + 480) + 2 * (C + 96) + 2 * (F + C);
  CHECK(per_layer == 108160);
  const uint64_t per_pair = (per_layer - 2 * (C + 96)) + 31 * per_layer;
  CHECK(per_pair == 3452736);
  CHECK(p.noise_floats_per_pair == per_pair);
  CHECK(item(p, "noise cache") == 512 * per_pair * 4);  // 7.07 GB

  CHECK(item(p, "logits") == G * V * 4);  // 268 MB
  CHECK(item(p, "activations") == G * (19 * C + F + 480) * 4 + G * F * 2);
  CHECK(item(p, "update workspace") == F * C * 4 + (F + C) * 512 * 4);
  CHECK(item(p, "tokens") == G * 288 * 4);
  CHECK(item(p, "CUDA reserve") == (1ull << 30));

  uint64_t sum = 0;
  for (const auto& it : p.items) sum += it.bytes;
  CHECK(p.total_bytes == sum);
  CHECK(p.device_bytes == uint64_t(139.0 * 1024 * 1024 * 1024));
  CHECK(p.fits);  // about 85.6 GB on a 149 GB H200
  CHECK(p.forward_flops_per_token == Approx(2.0 * double(upd + V * C)));  // head included, emb not

  // Adam: two fp32 moments per updated parameter
  PlanRequest ra = req_72b(1024, 1);
  ra.optim = "adam";
  CHECK(item(make_plan(ra), "optimizer state") == 2 * upd * 4);
  // regenerated noise: no cache
  PlanRequest rr = req_72b(1024, 1);
  rr.noise_cache_keep = false;
  CHECK(item(make_plan(rr), "noise cache") == 0);
  // fp32 weights: no master copy, 4 bytes per matrix parameter
  PlanRequest rf = req_72b(1024, 1);
  rf.weight_dtype = DType::F32;
  const Plan pf = make_plan(rf);
  CHECK(item(pf, "fp32 master") == 0);
  CHECK(item(pf, "weights") == (mat + vec) * 4);
  // population = directions x prompts: 512 x 2 has the states of 1024 generations, the noise of 256 pairs
  const Plan p2 = make_plan(req_72b(512, 2));
  CHECK(item(p2, "states") == item(p, "states"));
  CHECK(item(p2, "noise cache") == 256 * per_pair * 4);
}

TEST_CASE("plans that do not fit are refused", "[plan]") {
  // the GSM8K run: 512 x 16 = 8192 generations: 283 GB of state on one GPU, but fits on 8
  PlanRequest r = req_72b(512, 16);
  const Plan one = make_plan(r);
  CHECK_FALSE(one.fits);
  CHECK(format_plan(one).find("does not fit") != std::string::npos);
  r.gpus = 8;
  const Plan eight = make_plan(r);
  CHECK(eight.generations_per_device == 1024);
  CHECK(eight.fits);
  // population 1024 with fp32 weights: 28.8 GB weights + 35.4 GB state + 7.1 GB noise + ... = 73 GB:
  // fits 80 GiB (85.9 GB), not 64 GiB (68.7 GB)
  PlanRequest small = req_72b(1024, 1);
  small.weight_dtype = DType::F32;
  small.device_gib = 80;
  CHECK(make_plan(small).fits);
  small.device_gib = 64;
  CHECK_FALSE(make_plan(small).fits);
  // bad requests
  PlanRequest odd = req_72b(1023, 1);
  CHECK_THROWS_AS(make_plan(odd), InputError);
  PlanRequest bad = req_72b(1024, 1);
  bad.optim = "lion";
  CHECK_THROWS_AS(make_plan(bad), InputError);
}

TEST_CASE("a training run is refused before allocating when its plan does not fit", "[plan]") {
  const TrainConfig cfg = load_train_config("", {"run.name=fit", "task.name=digits", "model.init_preset=0.1b", "es.directions=64"});
  const Plan p = require_fits(cfg, 1, 139.0, "test GPU");
  CHECK(p.fits);
  try {
    require_fits(cfg, 1, 0.25, "test GPU");
    FAIL("no error");
  } catch (const InputError& e) {
    const std::string m = e.what();
    CHECK(m.find("run.device") != std::string::npos);
    CHECK(m.find("test GPU (0.25 GiB)") != std::string::npos);
    CHECK(m.find("does not fit") != std::string::npos);  // the table's verdict
    CHECK(m.find("weights") != std::string::npos);
  }
  // more devices split the generations
  CHECK(require_fits(cfg, 4, 139.0, "test GPU").generations_per_device == 16);
}

TEST_CASE("checkpoint headers give the model without reading the data", "[plan]") {
  for (const auto& name : test::rwkv_fixtures()) {
    INFO(name);
    const std::string path = test::fixture("rwkv7/" + name + ".pth");
    DType d = DType::F16;
    const ModelConfig h = read_checkpoint_config(path, &d);
    const Model m = Model::load(path);
    CHECK(h.describe() == m.cfg.describe());
    CHECK(h.param_count() == m.cfg.param_count());
    CHECK(d == m.source_dtype);
  }
  // safetensors written by the model code
  Model m = Model::random(ModelConfig::preset("tiny", 256), 5);
  const std::string st = (test::temp_root("plan") / "tiny.safetensors").string();
  m.save(st, DType::BF16);
  DType d = DType::F32;
  CHECK(read_checkpoint_config(st, &d).describe() == m.cfg.describe());
  CHECK(d == DType::BF16);
  CHECK_THROWS_AS(read_checkpoint_config((test::temp_root("plan") / "missing.pth").string()), InputError);
}

TEST_CASE("the planner accepts and rejects the checkpoints Model::load does, with its errors", "[plan]") {
  const fs::path dir = test::temp_root("plan") / "bad";
  fs::create_directories(dir);
  auto same_error = [&](const fs::path& p) {
    const std::string e = test::input_error_of([&] { Model::load(p.string()); });
    CHECK(e != "(no InputError)");
    CHECK(test::input_error_of([&] { read_checkpoint_config(p.string()); }) == e);
    return e;
  };
  auto write = [](const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; };
  Model m = Model::random(ModelConfig::preset("tiny", 256), 5);
  for (const std::string ext : {".pth", ".safetensors"}) {
    const fs::path good = dir / ("tiny" + ext);
    m.save(good.string(), DType::BF16);
    const std::string bytes = test::slurp(good);
    // truncated anywhere: in the header, in the tensor data, in the zip directory
    for (size_t cut : {size_t(0), size_t(7), size_t(100), bytes.size() / 3, bytes.size() - 100, bytes.size() - 1}) {
      INFO(ext << " cut at " << cut << " of " << bytes.size());
      write(dir / ("cut" + ext), bytes.substr(0, cut));
      same_error(dir / ("cut" + ext));
    }
  }
  // not a checkpoint; missing; a directory
  write(dir / "junk.pth", "this is not a checkpoint at all");
  CHECK_THAT(same_error(dir / "junk.pth"), Catch::Contains("neither a torch .pth (zip) nor a safetensors file"));
  CHECK_THAT(same_error(dir / "missing.pth"), Catch::Contains("missing.pth: cannot open"));
  same_error(dir);
  // readable files that are not an RWKV-7 model: a missing tensor, no tensors at all
  StateDict sd = m.to_state_dict(DType::F32);
  sd.tensors.erase(sd.tensors.begin() + 3);
  save_safetensors((dir / "missing_tensor.safetensors").string(), sd);
  CHECK_THAT(same_error(dir / "missing_tensor.safetensors"), Catch::Contains("missing_tensor.safetensors"));
  save_safetensors((dir / "none.safetensors").string(), StateDict{});
  CHECK_THAT(same_error(dir / "none.safetensors"), Catch::Contains("emb.weight"));
}

TEST_CASE("plan_request reads the training config", "[plan]") {
  TrainConfig cfg;
  cfg.model.init_preset = "1.5b";
  cfg.model.vocab = "models/rwkv_vocab_v20230424.txt";  // a World vocabulary: V = 65536
  cfg.model.init_dtype = "bf16";
  cfg.es.directions = 256;
  cfg.es.prompts_per_step = 6;
  cfg.es.rank = 2;
  cfg.es.noise_cache = "regenerate";
  cfg.optim.name = "adamw";
  cfg.task.thinking_length = 100;
  cfg.task.answer_length = 1000;
  const PlanRequest r = plan_request(cfg);
  CHECK(r.model.n_embd == 2048);
  CHECK(r.model.vocab == 65536);
  CHECK(r.weight_dtype == DType::BF16);
  CHECK(r.directions == 256);
  CHECK(r.prompts_per_step == 6);
  CHECK(r.rank == 2);
  CHECK_FALSE(r.noise_cache_keep);
  CHECK(r.optim == "adamw");
  CHECK(r.thinking_length == 100);
  CHECK(r.answer_length == 1000);
  cfg.model.init_preset.clear();
  cfg.model.path = test::fixture("rwkv7/rand-l3-d256-v1024.pth");
  const PlanRequest f = plan_request(cfg);
  CHECK(f.model.vocab == 1024);
  CHECK(f.weight_dtype == DType::BF16);
}

TEST_CASE("eggroll plan: exit 0 with the table when it fits, 2 when it does not", "[plan][cli]") {
  const std::string egg = EGGROLL_BINARY;
  const std::string out = (test::temp_root("plan") / "out.txt").string(), err = (test::temp_root("plan") / "err.txt").string();
  const std::string redirect = " >" + out + " 2>" + err;
  CHECK(run_status(egg + " plan --preset 7.2b model.vocab=world.txt es.directions=1024 --weights bf16" + redirect) == 0);
  CHECK(fs::file_size(out) > 0);
  CHECK(run_status(egg + " plan --preset 7.2b model.vocab=world.txt es.directions=512 es.prompts_per_step=16" +
                   " --weights bf16" + redirect) == 2);
  CHECK(fs::file_size(err) > 0);
  CHECK(fs::file_size(out) == 0);
  CHECK(run_status(egg + " plan --preset 7.2b model.vocab=world.txt es.directions=512 es.prompts_per_step=16" +
                   " --weights bf16 --gpus 8" + redirect) == 0);
  CHECK(run_status(egg + " plan --preset 7.2b --device-memory 0" + redirect) == 2);
}
