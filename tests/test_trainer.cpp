// Training runs end to end: exact resume, seeds, checkpoints, a real model improving.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/checkpoint.h"
#include "fixtures.h"
#include "app/trainer.h"
#include "rwkv/model.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

TrainConfig tiny_run(const std::string& name, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"run.name=" + name,
                                "run.dir=" + test::temp_root("trainer").string(),
                                "run.steps=6",
                                "run.checkpoint_every=3",
                                "run.samples_per_step=2",
                                "model.init_preset=tiny",
                                "model.init_seed=3",
                                "es.directions=8",
                                "es.prompts_per_step=2",
                                "es.sigma=0.05",
                                "optim.name=adam",
                                "optim.lr=0.01",
                                "task.name=digits",
                                "task.template=raw",
                                "task.answer_length=6",
                                "task.stop="};
  o.insert(o.end(), extra.begin(), extra.end());
  return load_train_config("", o);
}

std::string final_weights(const TrainConfig& cfg) {
  return test::slurp(fs::path(latest_checkpoint(run_directory(cfg))) / "model.safetensors");
}

}  // namespace

TEST_CASE("a resumed run ends bit-identical to an uninterrupted one", "[trainer][resume]") {
  TrainHooks quiet;
  quiet.progress = false;
  TrainConfig full = tiny_run("full");
  train(full, quiet);
  TrainConfig split = tiny_run("split");
  TrainHooks stop = quiet;
  stop.stop_after_steps = 3;
  auto r1 = train(split, stop);
  CHECK(r1.steps_done == 3);
  // a crash in the middle of writing the next checkpoint leaves a temporary directory behind
  fs::create_directories(fs::path(run_directory(split)) / "checkpoints" / ".tmp_step_6");
  std::ofstream(fs::path(run_directory(split)) / "checkpoints" / ".tmp_step_6" / "model.safetensors") << "torn";
  // and a line of a step that the checkpoint does not cover
  std::ofstream(fs::path(run_directory(split)) / "metrics.jsonl", std::ios::app) << "{\"step\": 3, \"torn\": tr";
  auto r2 = train(split, quiet);
  CHECK(r2.steps_done == 6);
  CHECK(final_weights(full) == final_weights(split));
  CHECK(test::count_lines(fs::path(run_directory(split)) / "metrics.jsonl") == 6);
  CHECK(test::slurp(fs::path(run_directory(full)) / "metrics.jsonl").size() > 0);
  // keep_checkpoints = 3 by default: step_3 and step_6 exist
  CHECK(fs::exists(fs::path(run_directory(full)) / "checkpoints" / "step_3"));
  CHECK(fs::exists(fs::path(run_directory(full)) / "checkpoints" / "step_6"));
}

TEST_CASE("bf16 matrices: a resumed run ends bit-identical to an uninterrupted one", "[trainer][resume][bf16]") {
  TrainHooks quiet;
  quiet.progress = false;
  TrainConfig full = tiny_run("full16", {"model.matrix_dtype=bf16"});
  train(full, quiet);
  TrainConfig split = tiny_run("split16", {"model.matrix_dtype=bf16"});
  TrainHooks stop = quiet;
  stop.stop_after_steps = 3;
  CHECK(train(split, stop).steps_done == 3);
  CHECK(train(split, quiet).steps_done == 6);
  CHECK(final_weights(full) == final_weights(split));
  // and the bf16 run is not the fp32 one
  TrainConfig f32 = tiny_run("full32", {"model.matrix_dtype=f32"});
  train(f32, quiet);
  CHECK(final_weights(full) != final_weights(f32));
}

TEST_CASE("same seed gives the same weights, another seed different ones", "[trainer]") {
  TrainHooks quiet;
  quiet.progress = false;
  TrainConfig a = tiny_run("seed_a", {"run.steps=2"}), b = tiny_run("seed_b", {"run.steps=2"}),
              c = tiny_run("seed_c", {"run.steps=2", "run.seed=9"});
  train(a, quiet);
  train(b, quiet);
  train(c, quiet);
  CHECK(final_weights(a) == final_weights(b));
  CHECK(final_weights(a) != final_weights(c));
}

TEST_CASE("resuming with a changed config is refused, naming the key", "[trainer]") {
  TrainHooks quiet;
  quiet.progress = false;
  TrainConfig a = tiny_run("changed", {"run.steps=1"});
  train(a, quiet);
  TrainConfig b = tiny_run("changed", {"run.steps=2", "es.sigma=0.1"});
  REQUIRE_THROWS_WITH(train(b, quiet), Catch::Contains("es.sigma"));
  // more steps alone is fine
  TrainConfig c = tiny_run("changed", {"run.steps=2"});
  CHECK(train(c, quiet).steps_done == 2);
}

TEST_CASE("a resume loads the checkpoint alone and checks it against the configured model's shapes",
          "[trainer][resume]") {
  TrainHooks quiet;
  quiet.progress = false;
  const std::string path = (test::temp_root("trainer") / "start.safetensors").string();
  Model::random(ModelConfig::preset("tiny", 256), 3).save(path, DType::BF16);
  TrainConfig a = tiny_run("from_path", {"model.init_preset=", "model.path=" + path, "run.steps=2", "run.checkpoint_every=1"});
  TrainHooks stop = quiet;
  stop.stop_after_steps = 1;
  CHECK(train(a, stop).steps_done == 1);
  CHECK(train(a, quiet).steps_done == 2);  // model.path's header agrees with the checkpoint
  TrainConfig whole = tiny_run("from_path_whole", {"model.init_preset=", "model.path=" + path, "run.steps=2", "run.checkpoint_every=1"});
  train(whole, quiet);
  CHECK(final_weights(whole) == final_weights(a));
  // model.path now holds another shape: the resume names both
  Model::random(ModelConfig::preset("tiny", 200), 3).save(path, DType::BF16);
  TrainConfig b = tiny_run("from_path", {"model.init_preset=", "model.path=" + path, "run.steps=3", "run.checkpoint_every=1"});
  REQUIRE_THROWS_WITH(train(b, quiet), Catch::Contains("differs from the configured one") && Catch::Contains("V=200"));
}

TEST_CASE("metrics and samples have the documented fields", "[trainer]") {
  TrainHooks quiet;
  quiet.progress = false;
  TrainConfig a = tiny_run("fields", {"run.steps=2", "run.eval_every=2", "task.val_size=2"});
  train(a, quiet);
  std::ifstream f(fs::path(run_directory(a)) / "metrics.jsonl");
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(f, line)) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(rows.size() == 2);
  for (const char* k : {"step", "reward_mean", "reward_std", "reward_min", "reward_max", "tokens_generated",
                        "tokens_per_s", "seconds", "update_norm", "lr", "sigma", "noise_cache_bytes", "device",
                        "ranks", "bytes_sent"})
    CHECK(rows[0].contains(k));
  CHECK(rows[0]["device"] == "cpu");
  CHECK(rows[1].contains("val_score"));
  CHECK(test::count_lines(fs::path(run_directory(a)) / "samples.jsonl") == 4);
  CHECK(fs::exists(fs::path(run_directory(a)) / "config.yaml"));
  // the written config loads back to the same config, model.matrix_dtype resolved ("auto" -> f32
  // for this fp32 model)
  CHECK(a.model.matrix_dtype == "auto");
  const TrainConfig saved = load_train_config((fs::path(run_directory(a)) / "config.yaml").string());
  CHECK(saved.model.matrix_dtype == "f32");
  CHECK(saved == resolve_matrix_dtype(a));
}

TEST_CASE("EGGROLL improves the trained byte-level model on a toy task", "[trainer][slow]") {
  TrainHooks quiet;
  quiet.progress = false;
  TrainConfig cfg = load_train_config(
      "", {"run.name=tiny834k", "run.dir=" + test::temp_root("trainer").string(), "run.steps=8", "run.checkpoint_every=0",
           "model.path=" + test::fixture("rwkv7/tiny-rwkv7-834k.pth"), "es.directions=32", "es.sigma=0.1",
           "optim.lr=1.0", "task.name=digits", "task.template=raw", "task.answer_length=12", "task.stop=",
           "task.val_size=4"});
  const double before = evaluate(cfg, "").score;
  train(cfg, quiet);
  const double after = evaluate(cfg, "").score;
  INFO("digits before " << before << " after " << after);
  CHECK(after > before);
}
