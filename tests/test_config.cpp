// Strict YAML config (core/config) and the training config built on it (app/train_config):
// defaults, files, typed overrides, every error class with its message, cross-key checks,
// resolved-YAML round trip, fingerprints and diffs.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/gemm_bf16.h"
#include "app/train_config.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

// A unique temporary directory for this process, removed at exit.
struct TempDir {
  fs::path path;
  TempDir() {
    auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() /
           ("eggroll_test_config_" + std::to_string(::getpid()) + "_" + std::to_string(stamp));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const fs::path& tmp() {
  static TempDir dir;
  return dir.path;
}

std::string write_file(const std::string& name, const std::string& text) {
  fs::path p = tmp() / name;
  std::ofstream f(p, std::ios::binary);
  f << text;
  f.close();
  REQUIRE(f.good());
  return p.string();
}

// The InputError message f throws ("" when it does not throw). Any other exception fails.
std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    std::string m = e.what();
    CHECK(m.find('\n') == std::string::npos);  // the CLI prints it on one line
    return m;
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

config::Schema small_schema() {
  config::Schema s;
  s.string("run.name", "demo", "run name")
      .boolean("run.verbose", false, "chatty logs")
      .integer("es.rank", 1, "rank", config::at_least(1))
      .integer("es.directions", 8, "population", config::at_least(2), config::at_most(1 << 20))
      .uint64("es.seed", 0, "seed")
      .real("es.sigma", 1e-3, "noise scale", config::greater_than(0))
      .enumeration("es.noise", {"gaussian", "rademacher"}, "gaussian", "noise")
      .string_list("es.exclude", std::vector<std::string>{"emb.weight", "head.weight"}, "excluded")
      .real("gen.top_p", 1.0, "nucleus", config::greater_than(0), config::at_most(1))
      .enumeration("model.preset", {"", "tiny", "0.1b"}, "", "preset")
      .string("task.stop", "\n\n", "stop text")
      .enumeration("task.name", {"countdown", "gsm8k", "digits"}, std::nullopt, "task (required)");
  return s;
}

config::Config load_small(const std::string& yaml, const std::vector<std::string>& ov = {}) {
  return config::load(small_schema(), write_file("small.yaml", yaml), ov);
}

}  // namespace

// ---- generic mechanism ------------------------------------------------------------------------

TEST_CASE("config: schema declarations are checked", "[config]") {
  config::Schema s;
  s.integer("a.b", 1, "x");
  CHECK_THROWS_AS(s.integer("a.b", 2, "again"), std::logic_error);
  CHECK_THROWS_AS(s.integer("a", 2, "section as key"), std::logic_error);
  CHECK_THROWS_AS(s.integer("a.b.c", 2, "key as section"), std::logic_error);
  CHECK_THROWS_AS(s.integer("bad key", 2, "space"), std::logic_error);
  CHECK_THROWS_AS(s.integer("x..y", 2, "empty component"), std::logic_error);
  CHECK_THROWS_AS(s.integer("r", 0, "default out of range", config::at_least(1)), std::logic_error);
  CHECK_THROWS_AS(s.enumeration("e", {"a", "b"}, "c", "default not a choice"), std::logic_error);
  CHECK(s.is_section("a"));
  CHECK_FALSE(s.is_section("a.b"));
  CHECK(s.find("a.b") != nullptr);
}

TEST_CASE("config: defaults and required keys", "[config]") {
  config::Config c(small_schema());
  CHECK(c.get_string("run.name") == "demo");
  CHECK(c.get_bool("run.verbose") == false);
  CHECK(c.get_int("es.rank") == 1);
  CHECK(c.get_double("es.sigma") == 1e-3);
  CHECK(c.get_list("es.exclude") == std::vector<std::string>{"emb.weight", "head.weight"});
  CHECK(c.get_string("task.stop") == "\n\n");
  CHECK_FALSE(c.has("task.name"));
  CHECK_THROWS_AS(c.get_int("es.sigma"), std::logic_error);  // wrong type: programming error
  CHECK_THROWS_AS(c.get_int("no.such"), std::logic_error);

  std::string m = input_error([] { load_small("run:\n  name: x\n"); });
  CHECK(contains(m, "missing required key 'task.name'"));
  CHECK(contains(m, "one of countdown, gsm8k, digits"));
  CHECK(contains(m, "small.yaml"));
}

TEST_CASE("config: YAML file values", "[config]") {
  auto c = load_small(
      "run:\n"
      "  name: alpha\n"
      "  verbose: true\n"
      "es:\n"
      "  rank: 4\n"
      "  seed: 0xdeadbeefcafe\n"
      "  sigma: 2.5e-3\n"
      "  noise: rademacher\n"
      "  exclude: [a.*, \"b\"]\n"
      "model: {preset: 0.1b}\n"
      "gen.top_p: 0.9\n"  // dotted keys are accepted in files too
      "task:\n"
      "  name: gsm8k\n"
      "  stop: \"</answer>\"\n");
  CHECK(c.get_string("run.name") == "alpha");
  CHECK(c.get_bool("run.verbose"));
  CHECK(c.get_int("es.rank") == 4);
  CHECK(c.get_uint64("es.seed") == 0xdeadbeefcafeull);
  CHECK(c.get_double("es.sigma") == 2.5e-3);
  CHECK(c.get_string("es.noise") == "rademacher");
  CHECK(c.get_list("es.exclude") == std::vector<std::string>{"a.*", "b"});
  CHECK(c.get_string("model.preset") == "0.1b");
  CHECK(c.get_double("gen.top_p") == 0.9);
  CHECK(c.get_string("task.name") == "gsm8k");
  CHECK(c.get_string("task.stop") == "</answer>");
  CHECK(c.get_int("es.directions") == 8);  // untouched: default
  CHECK(c.origin("es.rank").kind == config::Origin::File);
  CHECK(c.origin("es.rank").where == tmp().string() + "/small.yaml:5:9");
  CHECK(c.origin("es.directions").kind == config::Origin::Default);

  // empty file and empty sections are fine
  auto e = load_small("", {"task.name=digits"});
  CHECK(e.get_int("es.rank") == 1);
  auto e2 = load_small("es:\ntask:\n  name: digits\n");
  CHECK(e2.get_int("es.rank") == 1);
  // no file at all
  auto e3 = config::load(small_schema(), "", {"task.name=digits"});
  CHECK(e3.get_string("task.name") == "digits");
}

TEST_CASE("config: overrides of every type", "[config]") {
  const std::string base = "task: {name: countdown}\nes: {rank: 2}\n";
  auto c = load_small(base, {"run.verbose=true", "es.rank=7", "es.seed=18446744073709551615",
                             "es.sigma=1e-4", "run.name=beta run", "es.noise=rademacher",
                             "model.preset=tiny", "es.exclude=[emb.weight,head.weight,blocks.0.*]",
                             "task.name=digits", "task.stop=\"\\n###\\n\"", "gen.top_p=1"});
  CHECK(c.get_bool("run.verbose"));
  CHECK(c.get_int("es.rank") == 7);
  CHECK(c.get_uint64("es.seed") == 18446744073709551615ull);
  CHECK(c.get_double("es.sigma") == 1e-4);
  CHECK(c.get_string("run.name") == "beta run");
  CHECK(c.get_string("es.noise") == "rademacher");
  CHECK(c.get_string("model.preset") == "tiny");
  CHECK(c.get_list("es.exclude") == std::vector<std::string>{"emb.weight", "head.weight", "blocks.0.*"});
  CHECK(c.get_string("task.name") == "digits");
  CHECK(c.get_string("task.stop") == "\n###\n");
  CHECK(c.get_double("gen.top_p") == 1.0);
  CHECK(c.origin("es.rank").kind == config::Origin::Override);

  // later overrides win; a scalar is a one-element list; empty value = "" / []
  auto d = load_small(base, {"es.rank=3", "es.rank=5", "es.exclude=head.weight", "run.name=",
                             "model.preset=\"\""});
  CHECK(d.get_int("es.rank") == 5);
  CHECK(d.get_list("es.exclude") == std::vector<std::string>{"head.weight"});
  CHECK(d.get_string("run.name").empty());
  CHECK(d.get_string("model.preset").empty());
  auto e = load_small(base, {"es.exclude=[]"});
  CHECK(e.get_list("es.exclude").empty());
  auto f = load_small(base, {"es.exclude="});
  CHECK(f.get_list("es.exclude").empty());
  // strings keep YAML-looking text verbatim
  auto g = load_small(base, {"run.name=123", "task.stop=no"});
  CHECK(g.get_string("run.name") == "123");
  CHECK(g.get_string("task.stop") == "no");
}

TEST_CASE("config: unknown keys name the path and suggest the closest", "[config]") {
  const std::string base = "task: {name: countdown}\n";
  std::string m = input_error([&] { load_small(base, {"es.sigm=0.1"}); });
  CHECK(contains(m, "unknown key 'es.sigm' (did you mean 'es.sigma'?)"));
  CHECK(contains(m, "override 'es.sigm=0.1'"));

  m = input_error([&] { load_small(base + "es:\n  sigam: 0.1\n"); });
  CHECK(contains(m, "small.yaml:3:3: unknown key 'es.sigam' (did you mean 'es.sigma'?)"));

  m = input_error([&] { load_small(base + "ess:\n  sigma: 0.1\n"); });
  CHECK(contains(m, "unknown key 'ess' (did you mean 'es'?)"));

  m = input_error([&] { load_small(base, {"gen.sigma=0.1"}); });  // right key, wrong section
  CHECK(contains(m, "unknown key 'gen.sigma' (did you mean 'es.sigma'?)"));

  m = input_error([&] { load_small(base, {"gen.top=0.1"}); });  // prefix of a key
  CHECK(contains(m, "did you mean 'gen.top_p'?"));

  m = input_error([&] { load_small(base, {"completely.unrelated=1"}); });
  CHECK(contains(m, "unknown key 'completely.unrelated'"));
  CHECK_FALSE(contains(m, "did you mean"));

  m = input_error([&] { load_small(base, {"es=1"}); });
  CHECK(contains(m, "'es' is a section"));
  m = input_error([&] { load_small(base, {"es.rank"}); });
  CHECK(contains(m, "expected key.path=value"));
  m = input_error([&] { load_small(base + "es: 3\n"); });
  CHECK(contains(m, "'es' is a section"));
  CHECK(contains(m, "small.yaml:2:1"));

  CHECK(config::edit_distance("es.sigm", "es.sigma") == 1);
  CHECK(config::edit_distance("sigam", "sigma") == 1);  // transposition
  CHECK(config::edit_distance("", "abc") == 3);
}

TEST_CASE("config: wrong types name key, value and expected form", "[config]") {
  const std::string base = "task: {name: countdown}\n";
  struct Case {
    std::string override_, expect;
  };
  std::vector<Case> cases = {
      {"es.rank=abc", "es.rank: expected an integer >= 1, got 'abc'"},
      {"es.rank=1.5", "es.rank: expected an integer >= 1, got '1.5'"},
      {"es.rank=[1]", "es.rank: expected an integer >= 1, got a list"},
      {"es.rank=", "es.rank: expected an integer >= 1, got an empty value"},
      {"run.verbose=yes", "run.verbose: expected true or false, got 'yes'"},
      {"es.sigma=fast", "es.sigma: expected a number > 0, got 'fast'"},
      {"es.sigma=.inf", "es.sigma: expected a number > 0, got '.inf'"},
      {"es.sigma=nan", "es.sigma: expected a number > 0, got 'nan'"},
      {"es.seed=-1", "es.seed: expected a non-negative integer, got '-1'"},
      {"es.noise=uniform", "es.noise: expected one of gaussian, rademacher, got 'uniform'"},
      {"model.preset=huge", "model.preset: expected one of \"\", tiny, 0.1b, got 'huge'"},
      {"es.exclude={a: 1}", "es.exclude: expected a list of strings, got a mapping"},
      {"es.exclude=[a, [b]]", "es.exclude: expected a list of strings, got a list as element 2"},
      {"run.name=[a, b]", "run.name: expected a string, got a list"},
      {"es.rank=[1", "es.rank: not a valid YAML value"},
  };
  for (const auto& c : cases) {
    INFO(c.override_);
    std::string m = input_error([&] { load_small(base, {c.override_}); });
    CHECK(contains(m, c.expect));
  }
  std::string m = input_error([&] { load_small(base + "es:\n  rank: two\n"); });
  CHECK(contains(m, "small.yaml:3:9: es.rank: expected an integer >= 1, got 'two'"));
}

TEST_CASE("config: out-of-range values name key, value and range", "[config]") {
  const std::string base = "task: {name: countdown}\n";
  struct Case {
    std::string override_, expect;
  };
  std::vector<Case> cases = {
      {"es.rank=0", "es.rank: 0 is out of range (expected an integer >= 1)"},
      {"es.directions=1", "es.directions: 1 is out of range (expected an integer in [2, 1048576])"},
      {"es.directions=2000000", "es.directions: 2000000 is out of range (expected an integer in [2, 1048576])"},
      {"es.sigma=0", "es.sigma: 0 is out of range (expected a number > 0)"},
      {"es.sigma=-1e-3", "es.sigma: -0.001 is out of range (expected a number > 0)"},
      {"gen.top_p=1.5", "gen.top_p: 1.5 is out of range (expected a number in (0, 1])"},
      {"es.rank=99999999999", "es.rank: 99999999999 is out of range for a 32-bit integer"},
      {"es.rank=999999999999999999999", "es.rank: '999999999999999999999' is out of range for a 32-bit integer"},
      {"es.seed=18446744073709551616", "es.seed: '18446744073709551616' is out of range for a 64-bit unsigned integer"},
  };
  for (const auto& c : cases) {
    INFO(c.override_);
    std::string m = input_error([&] { load_small(base, {c.override_}); });
    CHECK(contains(m, c.expect));
  }
  config::Config c(small_schema());
  CHECK(contains(input_error([&] { c.set_int("es.rank", 0); }), "es.rank: 0 is out of range"));
  CHECK(contains(input_error([&] { c.set_string("es.noise", "x"); }), "es.noise: expected one of"));
  CHECK_THROWS_AS(c.set_double("es.rank", 1.0), std::logic_error);
}

TEST_CASE("config: YAML syntax errors carry file, line and column", "[config]") {
  std::string path = write_file("broken.yaml", "run:\n  name: x\nes:\n  rank: [1, 2\n  sigma: 1\n");
  std::string m = input_error([&] { config::load(small_schema(), path); });
  REQUIRE_FALSE(m.empty());
  CHECK(m.rfind(path + ":", 0) == 0);
  CHECK((contains(m, path + ":5:") || contains(m, path + ":4:") || contains(m, path + ":6:")));

  path = write_file("tabs.yaml", "run:\n  name: x\n\tbad: 1\n");
  m = input_error([&] { config::load(small_schema(), path); });
  CHECK(m.rfind(path + ":3:", 0) == 0);

  m = input_error([&] { load_small("- a\n- b\n"); });
  CHECK(contains(m, "expected a mapping of config keys at the top level"));
  m = input_error([&] { load_small("task: {name: digits}\n---\nes: {rank: 2}\n"); });
  CHECK(contains(m, "small.yaml:2:1: expected one YAML document"));
  // yaml-cpp 0.7 takes a stray ',' for an endless run of empty documents: an error here
  m = input_error([&] { load_small(",\n"); });
  CHECK(contains(m, "expected one YAML document"));
  m = input_error([&] { load_small(",task: {name: digits}\n"); });
  CHECK(contains(m, "expected one YAML document"));
  m = input_error([&] { load_small("task: {name: digits}\n", {"es.exclude=,"}); });
  CHECK(contains(m, "es.exclude: not a valid YAML value"));
  m = input_error([&] { load_small("task: {name: digits}\nes: {rank: 2}\nes:\n  rank: 3\n"); });
  CHECK(contains(m, "duplicate key 'es.rank'"));
  m = input_error([&] { load_small("task: {name: digits}\nes: {rank: 2}\nes.rank: 3\n"); });
  CHECK(contains(m, "duplicate key 'es.rank'"));

  m = input_error([&] { config::load(small_schema(), (tmp() / "missing.yaml").string()); });
  CHECK(contains(m, "missing.yaml: cannot open config file"));
  m = input_error([&] { config::load(small_schema(), tmp().string()); });
  CHECK(contains(m, "is a directory"));
}

TEST_CASE("config: resolved YAML round trip is identical", "[config]") {
  auto c = load_small("task: {name: gsm8k}\n",
                      {"task.stop=\"\\n\\n\\x01\"", "es.exclude=[\"\", \"a b\", \"c: d\", \"#e\", x_null]",
                       "es.sigma=0.1", "es.seed=12345678901234567890", "model.preset=0.1b"});
  c.set_string("run.name", "we\"ird \\ name: #x\ttab \xc3\xa9 'q' \x7f");
  CHECK(c.get_list("es.exclude") == std::vector<std::string>{"", "a b", "c: d", "#e", "x_null"});
  std::string yaml = c.to_yaml();
  std::string p = write_file("resolved.yaml", yaml);
  auto r = config::load(small_schema(), p);
  CHECK(config::diff(c, r).empty());
  CHECK(r.to_yaml() == yaml);
  CHECK(r.fingerprint() == c.fingerprint());
  CHECK(r.fingerprint_hex().size() == 16);
  CHECK(r.get_string("run.name") == c.get_string("run.name"));
  CHECK(r.get_string("task.stop") == "\n\n\x01");
  CHECK(r.get_list("es.exclude") == c.get_list("es.exclude"));
  CHECK(r.get_double("es.sigma") == 0.1);

  // every key is written, in schema order, defaults included
  size_t last = 0;
  const config::Schema schema = small_schema();
  for (const auto& e : schema.entries()) {
    std::string leaf = e.key.substr(e.key.rfind('.') + 1) + ":";
    size_t at = yaml.find(leaf, last);
    INFO(e.key);
    CHECK(at != std::string::npos);
    last = at;
  }
  CHECK(contains(yaml, "sigma: 0.1  # noise scale"));
  CHECK(contains(yaml, "directions: 8  # population"));

  // doubles survive exactly
  for (double v : {0.1, 1e-8, 7e-4, 1.0 / 3.0, 123456789.125, 1e300, 5e-324}) {
    auto x = load_small("task: {name: digits}\n");
    x.set_double("es.sigma", v);
    auto y = config::load(small_schema(), write_file("d.yaml", x.to_yaml(false)));
    CHECK(y.get_double("es.sigma") == v);
  }
}

TEST_CASE("config: diff and require_same report the differing key", "[config]") {
  auto a = load_small("task: {name: digits}\n");
  auto b = load_small("task: {name: digits}\n", {"es.sigma=0.002", "run.verbose=true"});
  auto d = config::diff(a, b);
  REQUIRE(d.size() == 2);
  CHECK(d[0].key == "run.verbose");
  CHECK(d[0].a == "false");
  CHECK(d[0].b == "true");
  CHECK(d[1].key == "es.sigma");
  CHECK(d[1].a == "0.001");
  CHECK(d[1].b == "0.002");
  CHECK(a.fingerprint() != b.fingerprint());
  CHECK(config::diff(a, b, {"run.*"}).size() == 1);
  CHECK(config::diff(a, b, {"run.verbose", "es.sigma"}).empty());

  std::string m = input_error([&] { config::require_same(a, "the run's config.yaml", b, "this config"); });
  CHECK(contains(m, "this config differs from the run's config.yaml at key 'run.verbose': true vs false"));
  CHECK(contains(m, "1 more: es.sigma"));
  CHECK_NOTHROW(config::require_same(a, "x", a, "y"));
}

// ---- TrainConfig ------------------------------------------------------------------------------

TEST_CASE("train config: defaults", "[config][train]") {
  std::string p = write_file("mini.yaml", "model:\n  init_preset: tiny\ntask:\n  name: digits\n");
  TrainConfig c = load_train_config(p, {});
  TrainConfig want;
  want.run.name = "mini";  // file stem
  want.model.init_preset = "tiny";
  want.task.name = "digits";
  CHECK(c == want);
  CHECK(c.run.dir == "runs");
  CHECK(c.run.steps == 10);
  CHECK(c.run.checkpoint_every == 5);
  CHECK(c.run.keep_checkpoints == 3);
  CHECK(c.es.sigma == 1e-3);
  CHECK(c.es.noise == "gaussian");
  CHECK(c.es.noise_cache == "keep");
  CHECK(c.es.freeze_nonlora);
  CHECK(c.es.exclude == std::vector<std::string>{"emb.weight", "head.weight"});
  CHECK(c.es.include == std::vector<std::string>{"*"});
  CHECK(c.es.shaping == "zscore");
  CHECK(c.optim.name == "sgd");
  CHECK(c.optim.lr == 0.125);
  CHECK(c.task.template_ == "chat");
  CHECK(c.task.stop == "\n\n");
  CHECK(c.task.answer_length == 32);
  CHECK(c.generation.top_p == 1.0);
  CHECK(c.dist.backend == "auto");
  CHECK(c.dist.timeout_s == 300.0);
  CHECK(c.model.vocab == "byte");
  CHECK(c.model.init_dtype == "f32");

  // the schema lists every key once, and required task.name has no default
  const auto& s = train_config_schema();
  CHECK(s.entries().size() == 62);
  CHECK(c.run.device == "cpu");
  CHECK(s.find("task.name")->required());
  CHECK(s.find("task.template") != nullptr);
  std::string m = input_error([&] { load_train_config(write_file("notask.yaml", "model: {init_preset: tiny}\n")); });
  CHECK(contains(m, "missing required key 'task.name'"));
}

TEST_CASE("train config: overrides, run name, example configs", "[config][train]") {
  std::string p = write_file("base.yaml", "model:\n  path: m.pth\ntask:\n  name: countdown\n");
  TrainConfig c = load_train_config(
      p, {"run.name=exp1", "run.seed=42", "es.directions=64", "es.exclude=[emb.weight,head.weight,ln_out.*]",
          "es.freeze_nonlora=false", "optim.name=adamw", "optim.lr_schedule=linear", "optim.lr_decay=0",
          "generation.temperature=0.7", "generation.top_p=0.9", "task.template=raw",
          "model.vocab=vocab.txt"});
  CHECK(c.run.name == "exp1");
  CHECK(c.run.seed == 42);
  CHECK(c.es.directions == 64);
  CHECK(c.es.exclude == std::vector<std::string>{"emb.weight", "head.weight", "ln_out.*"});
  CHECK_FALSE(c.es.freeze_nonlora);
  CHECK(c.optim.name == "adamw");
  CHECK(c.optim.lr_schedule == "linear");
  CHECK(c.optim.lr_decay == 0.0);
  CHECK(c.generation.temperature == 0.7);
  CHECK(c.task.template_ == "raw");
  CHECK(c.model.vocab == "vocab.txt");

  CHECK(contains(input_error([] { load_train_config("", {"task.name=digits", "model.init_preset=tiny"}); }),
                 "run.name: required when no config file is given"));
  CHECK(load_train_config("", {"task.name=digits", "model.init_preset=tiny", "run.name=x"}).run.name == "x");
  CHECK(contains(input_error([&] { load_train_config(p, {"run.name=a/b"}); }), "run.name: \"a/b\" is not a valid"));

  int n = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(EGGROLL_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    TrainConfig e;
    CHECK_NOTHROW(e = load_train_config(entry.path().string()));
    CHECK(e.run.name == entry.path().stem().string());
    ++n;
  }
  CHECK(n >= 1);
}

TEST_CASE("train config: cross-key errors name the keys", "[config][train]") {
  std::string p = write_file("x.yaml", "model:\n  init_preset: tiny\ntask:\n  name: digits\n");
  struct Case {
    std::vector<std::string> ov;
    std::string expect;
  };
  std::vector<Case> cases = {
      {{"es.directions=7"}, "es.directions must be even"},
      {{"model.path=m.pth"}, "exactly one of model.path and model.init_preset must be set (both are)"},
      {{"model.init_preset="}, "exactly one of model.path and model.init_preset must be set (neither is)"},
      {{"task.name=gsm8k"}, "task.name = gsm8k requires task.train_path"},
      {{"run.eval_every=5", "task.val_size=0"}, "run.eval_every = 5 requires task.val_size >= 1"},
      {{"task.template=chat_think"}, "task.template = chat_think requires task.thinking_length >= 1"},
      {{"optim.lr_decay=0.99"}, "optim.lr_decay = 0.99 has no effect with optim.lr_schedule = constant"},
      {{"optim.sigma_schedule=linear", "optim.sigma_decay=0"}, "optim.sigma_decay: 0 is out of range"},
      {{"optim.lr_schedule=multiplicative", "optim.lr_decay=0"}, "optim.lr_decay must be > 0 with optim.lr_schedule = multiplicative"},
      {{"generation.top_k=5"}, "generation.top_k / generation.top_p have no effect with generation.temperature = 0"},
      {{"dist.rendezvous=tcp"}, "dist.rendezvous = tcp requires dist.rendezvous_path"},
      {{"dist.rendezvous=file"}, "dist.rendezvous = file requires dist.rendezvous_path"},
      {{"es.include=[]"}, "es.include is empty"},
      {{"es.exclude=[a, \"\"]"}, "es.exclude: element 2 is an empty pattern"},
      {{"es.directions=65536", "es.prompts_per_step=65536"}, "es.directions x es.prompts_per_step"},
      {{"model.vocab="}, "model.vocab"},
      {{"run.dir="}, "run.dir"},
      {{"optim.beta1=1"}, "optim.beta1: 1 is out of range (expected a number in [0, 1))"},
      {{"generation.top_p=0"}, "generation.top_p: 0 is out of range (expected a number in (0, 1])"},
      {{"run.steps=0"}, "run.steps: 0 is out of range (expected an integer >= 1)"},
      {{"es.rank=abc"}, "es.rank: expected an integer >= 1, got 'abc'"},
      {{"es.sigm=0.1"}, "unknown key 'es.sigm' (did you mean 'es.sigma'?)"},
      {{"task.name=chess"}, "task.name: expected one of countdown, gsm8k, math, external, sft, digits, fastzero, reptok, uniquetok, got 'chess'"},
      {{"task.name=math"}, "task.name = math requires task.train_path"},
      {{"task.name=external", "task.train_path=p.jsonl"}, "task.name = external requires task.train_path"},
      {{"task.timeout_s=0"}, "task.timeout_s"},
      {{"task.format_reward=1.5"}, "task.format_reward"},
      {{"task.chunk_tokens=-1"}, "task.chunk_tokens: -1 is out of range"},
      {{"task.chunk_tokens=x"}, "task.chunk_tokens: expected an integer"},
      {{"task.chunk_tokens=4"}, "task.chunk_tokens = 4 applies to task.name = sft only"},
      {{"task.answer_prefix=x"}, "task.answer_prefix applies to task.name = math only"},
      {{"task.name=math", "task.train_path=m.jsonl", "task.template=chat_think", "task.thinking_length=8",
        "task.answer_prefix=\\boxed{"},
       "task.answer_prefix: not with task.template = chat_think"},
  };
  for (const auto& c : cases) {
    INFO(c.expect);
    std::string m = input_error([&] { load_train_config(p, c.ov); });
    CHECK(contains(m, c.expect));
  }
  // the fixes are accepted
  CHECK_NOTHROW(load_train_config(p, {"task.name=gsm8k", "task.train_path=train.jsonl"}));
  CHECK(load_train_config(p, {"task.name=sft", "task.train_path=t.jsonl", "task.chunk_tokens=4"}).task.chunk_tokens == 4);
  CHECK_NOTHROW(load_train_config(p, {"task.template=chat_think", "task.thinking_length=64"}));
  CHECK_NOTHROW(load_train_config(p, {"dist.rendezvous=tcp", "dist.rendezvous_path=node0:29500"}));
  CHECK_NOTHROW(load_train_config(p, {"generation.temperature=1", "generation.top_k=5"}));
  CHECK_NOTHROW(load_train_config(p, {"optim.lr_schedule=multiplicative", "optim.lr_decay=0.99"}));

  // values set in code are validated the same way
  TrainConfig t = load_train_config(p);
  t.es.directions = 3;
  CHECK(contains(input_error([&] { validate(t); }), "es.directions must be even"));
  t.es.directions = 0;
  CHECK(contains(input_error([&] { to_yaml(t); }), "es.directions: 0 is out of range"));
}

TEST_CASE("train config: resolved config.yaml round trip", "[config][train]") {
  std::string p = write_file("rt.yaml",
                             "run:\n  name: rt-run\n  seed: 18446744073709551615\n"
                             "model:\n  path: \"/models/x y.pth\"\n  vocab: vocab.txt\n"
                             "es:\n  directions: 256\n  prompts_per_step: 6\n  sigma: 7.0e-4\n"
                             "  exclude: [emb.weight, head.weight, \"blocks.*.att.w0\"]\n"
                             "optim:\n  lr: 0.06\n  sigma_schedule: multiplicative\n  sigma_decay: 0.999\n"
                             "task:\n  name: gsm8k\n  train_path: train.jsonl\n  stop: \"\\n\\nUser:\"\n"
                             "  template: chat_think\n  thinking_length: 512\n");
  TrainConfig c = load_train_config(p, {"generation.temperature=0.6", "generation.top_p=0.95"});
  std::string yaml = to_yaml(c);
  CHECK(contains(yaml, "# eggroll train config"));
  CHECK(contains(yaml, "  sigma: 7e-04  # noise scale"));
  CHECK(contains(yaml, "  stop: \"\\n\\nUser:\""));
  CHECK(contains(yaml, "  template: chat_think"));
  CHECK(contains(yaml, "  init_preset: \"\""));

  fs::create_directories(tmp() / "runs" / "rt-run");
  std::string saved = write_file("runs/rt-run/config.yaml", yaml);
  TrainConfig r = load_train_config(saved, {});
  CHECK(r == c);
  CHECK(to_yaml(r) == yaml);
  CHECK(fingerprint(r) == fingerprint(c));
  CHECK(diff(r, c).empty());

  // resume: schedule length may change, training settings may not
  TrainConfig longer = load_train_config(saved, {"run.steps=20", "run.threads=2"});
  CHECK_NOTHROW(require_resumable(r, saved, longer));
  TrainConfig other = load_train_config(saved, {"es.sigma=0.002", "optim.lr=0.1"});
  auto d = diff(r, other);
  REQUIRE(d.size() == 2);
  CHECK(d[0].key == "es.sigma");
  CHECK(d[1].key == "optim.lr");
  std::string m = input_error([&] { require_resumable(r, saved, other); });
  CHECK(contains(m, "config differs from the run's config.yaml (" + saved + ") at key 'es.sigma': 0.002 (now) vs 7e-04 (run)"));
  CHECK(contains(m, "also optim.lr"));
  CHECK(fingerprint(other) != fingerprint(r));

  // TrainConfig <-> Config
  config::Config cc = to_config(c);
  CHECK(cc.get_int("es.directions") == 256);
  CHECK(cc.get_string("task.template") == "chat_think");
  CHECK(from_config(cc) == c);
}

TEST_CASE("train config: model.matrix_dtype resolves auto, and resume compares what it meant", "[config][train]") {
  TrainConfig c = load_train_config("", {"task.name=digits", "model.init_preset=tiny", "run.name=x"});  // fp32 init
  CHECK(c.model.matrix_dtype == "auto");
  CHECK(stored_weight_dtype(c) == DType::F32);
  CHECK(resolve_matrix_dtype(c).model.matrix_dtype == "f32");
  c.model.init_dtype = "bf16";
  CHECK(stored_weight_dtype(c) == DType::BF16);
  CHECK(resolve_matrix_dtype(c).model.matrix_dtype == (cpu_has_bf16_dot() ? "bf16" : "f32"));
  c.run.device = "cuda";  // the GPU always multiplies a 16-bit model in bf16
  CHECK(resolve_matrix_dtype(c).model.matrix_dtype == "bf16");
  c.run.device = "cpu";
  for (const char* v : {"f32", "bf16"}) {  // explicit values stay
    c.model.matrix_dtype = v;
    CHECK(resolve_matrix_dtype(c).model.matrix_dtype == v);
  }
  CHECK(contains(input_error([] { load_train_config("", {"run.name=x", "model.matrix_dtype=fp16"}); }), "model.matrix_dtype"));

  // resume: the saved config holds the resolved value; "auto" now must mean the same
  TrainConfig saved = c, now = c;
  saved.model.init_dtype = now.model.init_dtype = "f32";
  saved.model.matrix_dtype = "f32", now.model.matrix_dtype = "auto";
  CHECK_NOTHROW(require_resumable(saved, "run/config.yaml", now));
  saved.model.matrix_dtype = "bf16";
  CHECK(contains(input_error([&] { require_resumable(saved, "run/config.yaml", now); }),
                 "at key 'model.matrix_dtype': f32 (now) vs bf16 (run)"));
  // a config.yaml written before the key existed: bf16 products only ran on cuda
  saved.model.matrix_dtype = "auto", saved.model.init_dtype = now.model.init_dtype = "bf16";
  now.model.matrix_dtype = "f32";
  CHECK_NOTHROW(require_resumable(saved, "run/config.yaml", now));
  now.model.matrix_dtype = "bf16";
  CHECK(contains(input_error([&] { require_resumable(saved, "run/config.yaml", now); }),
                 "at key 'model.matrix_dtype': bf16 (now) vs f32 (run)"));
}
