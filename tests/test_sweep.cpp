// `eggroll sweep`: grid expansion and naming, up-front validation, dry run, Slurm script,
// and a real tiny sweep that skips its completed points when run again.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "app/sweep.h"
#include "app/trainer.h"
#include "fixtures.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// A directory `dir` holding base.yaml (a tiny, fast run whose run.dir is dir/runs) and
// sweep.yaml with the given body after `base: base.yaml`.
fs::path make_sweep(const std::string& dir, const std::string& body, const std::string& base_extra = "") {
  const fs::path d = test::temp_root("sweep") / dir;
  fs::remove_all(d);
  write(d / "base.yaml", "run:\n  dir: " + (d / "runs").string() +
                             "\n  steps: 2\n  checkpoint_every: 0\n  samples_per_step: 0\n  threads: 1\n"
                             "model:\n  init_preset: tiny\n  init_seed: 1\n"
                             "es:\n  directions: 4\n  sigma: 0.05\n"
                             "task:\n  name: digits\n  template: raw\n  stop: \"\"\n  answer_length: 4\n  val_size: 2\n" +
                             base_extra);
  write(d / "sweep.yaml", "base: base.yaml\n" + body);
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

// Runs the real binary; returns its exit status, stdout+stderr in `out`.
int run_cli(const std::string& args, std::string& out) {
  const fs::path log = test::temp_root("sweep") / "cli.log";
  const std::string cmd = std::string(EGGROLL_BINARY) + " sweep " + args + " > " + log.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  out = test::slurp(log);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

TEST_CASE("the grid expands in file order, last key fastest, with filesystem-safe names", "[sweep]") {
  const fs::path d = make_sweep("order", "name: pop\ngrid:\n  es.directions: [4, 8]\n  run.seed: [0, 1, 2]\n");
  SweepPlan plan = plan_sweep((d / "sweep.yaml").string());
  REQUIRE(plan.points.size() == 6);
  const std::vector<std::string> names = {"directions-4__seed-0", "directions-4__seed-1", "directions-4__seed-2",
                                          "directions-8__seed-0", "directions-8__seed-1", "directions-8__seed-2"};
  for (size_t i = 0; i < 6; i++) {
    const SweepPoint& p = plan.points[i];
    CHECK(p.index == i);
    CHECK(p.name == names[i]);
    CHECK(p.config.es.directions == (i < 3 ? 4 : 8));
    CHECK(p.config.run.seed == i % 3);
    CHECK(p.config.run.name == names[i]);
    CHECK(p.run_dir == (d / "runs" / "pop" / names[i]).string());
    CHECK(p.overrides == std::vector<std::string>{"es.directions=" + std::to_string(p.config.es.directions),
                                                  "run.seed=" + std::to_string(i % 3)});
  }
  CHECK(plan.sweep_dir == (d / "runs" / "pop").string());
  CHECK(plan.spec.base_path == (d / "base.yaml").string());
  // validation writes nothing
  CHECK_FALSE(fs::exists(d / "runs"));

  // the name defaults to the sweep file's stem; nested grid sections are flattened
  const fs::path d2 = make_sweep("nested", "grid:\n  es:\n    sigma: [1e-3, 0.05]\n    rank: [1]\n");
  SweepPlan p2 = plan_sweep((d2 / "sweep.yaml").string());
  REQUIRE(p2.points.size() == 2);
  CHECK(p2.spec.name == "sweep");
  CHECK(p2.points[0].name == "sigma-1e-3__rank-1");
  CHECK(p2.points[0].config.es.sigma == 1e-3);
  CHECK(p2.points[1].name == "sigma-0.05__rank-1");
}

TEST_CASE("point names: shared last components use the full key; odd characters become '_'", "[sweep]") {
  CHECK(point_name({{"run.seed", "1"}, {"task.seed", "2"}}) == "run.seed-1__task.seed-2");
  CHECK(point_name({{"es.exclude", "[emb.weight, head.weight]"}}) == "exclude-_emb.weight__head.weight_");
  CHECK(point_name({{"task.stop", "\"\""}}) == "stop-none");
  CHECK(point_name({{"optim.lr", "-0.5"}, {"es.noise", "rademacher"}}) == "lr--0.5__noise-rademacher");

  // list-valued keys and quoted strings survive as overrides
  const fs::path d = make_sweep("lists", "grid:\n  es.exclude: [[emb.weight], [emb.weight, head.weight]]\n"
                                         "  task.stop: [\"\", \"\\n\"]\n");
  SweepPlan plan = plan_sweep((d / "sweep.yaml").string());
  REQUIRE(plan.points.size() == 4);
  CHECK(plan.points[0].config.es.exclude == std::vector<std::string>{"emb.weight"});
  CHECK(plan.points[0].config.task.stop.empty());
  CHECK(plan.points[1].config.task.stop == "\n");
  CHECK(plan.points[2].config.es.exclude == std::vector<std::string>{"emb.weight", "head.weight"});
  CHECK(plan.points[1].name == "exclude-_emb.weight___stop-_n");
}

TEST_CASE("an invalid point stops the sweep before any run, naming the point and the key", "[sweep]") {
  const fs::path d = make_sweep("invalid", "name: bad\ngrid:\n  run.seed: [0]\n  es.directions: [4, 7, 8]\n");
  const std::string msg = error_of([&] { plan_sweep((d / "sweep.yaml").string()); });
  CHECK_THAT(msg, Catch::Contains("point 2/3"));
  CHECK_THAT(msg, Catch::Contains("seed-0__directions-7"));
  CHECK_THAT(msg, Catch::Contains("es.directions"));
  CHECK_FALSE(fs::exists(d / "runs"));

  // a value of the wrong type names the key too
  const fs::path d2 = make_sweep("badtype", "grid:\n  optim.lr: [0.1, fast]\n");
  const std::string m2 = error_of([&] { plan_sweep((d2 / "sweep.yaml").string()); });
  CHECK_THAT(m2, Catch::Contains("point 2/2"));
  CHECK_THAT(m2, Catch::Contains("optim.lr"));

  // through the command line: exit status 2, one line, nothing run or written
  std::string out;
  CHECK(run_cli((d / "sweep.yaml").string(), out) == 2);
  CHECK_THAT(out, Catch::Contains("point 2/3"));
  CHECK_FALSE(fs::exists(d / "runs"));

  // a run directory whose config.yaml cannot be resumed with the point's config
  const fs::path d3 = make_sweep("changed", "name: s\ngrid:\n  es.directions: [4]\n");
  SweepPlan ok = plan_sweep((d3 / "sweep.yaml").string());
  TrainConfig other = ok.points[0].config;
  other.es.sigma = 0.5;
  write(fs::path(ok.points[0].run_dir) / "config.yaml", to_yaml(other));
  const std::string m3 = error_of([&] { plan_sweep((d3 / "sweep.yaml").string()); });
  CHECK_THAT(m3, Catch::Contains("point 1/1"));
  CHECK_THAT(m3, Catch::Contains("es.sigma"));
}

TEST_CASE("sweep file mistakes are InputErrors naming the key", "[sweep]") {
  auto err = [](const std::string& dir, const std::string& body, std::vector<std::string> cli = {}) {
    const fs::path d = make_sweep(dir, body);
    return error_of([&] { plan_sweep((d / "sweep.yaml").string(), cli); });
  };
  std::string m = err("unknown", "grids:\n  es.directions: [4]\n");
  CHECK_THAT(m, Catch::Contains("unknown key 'grids'"));
  CHECK_THAT(m, Catch::Contains("did you mean 'grid'"));
  CHECK_THAT(m, Catch::Contains("sweep.yaml:2:1"));

  m = err("gridkey", "grid:\n  es.direction: [4]\n");
  CHECK_THAT(m, Catch::Contains("unknown key 'es.direction'"));
  CHECK_THAT(m, Catch::Contains("es.directions"));

  CHECK_THAT(err("notlist", "grid:\n  es.directions: 4\n"), Catch::Contains("expected a list"));
  CHECK_THAT(err("emptylist", "grid:\n  es.directions: []\n"), Catch::Contains("empty"));
  CHECK_THAT(err("dup", "grid:\n  es.directions: [4, 4]\n"), Catch::Contains("listed twice"));
  CHECK_THAT(err("noGrid", "name: x\n"), Catch::Contains("missing key 'grid'"));
  CHECK_THAT(err("runname", "grid:\n  run.name: [a, b]\n"), Catch::Contains("run.name"));
  CHECK_THAT(err("badname", "name: a/b\ngrid:\n  es.directions: [4]\n"), Catch::Contains("not a valid sweep name"));
  CHECK_THAT(err("cliGrid", "grid:\n  es.directions: [4]\n", {"es.directions=8"}),
             Catch::Contains("swept by the grid"));
  CHECK_THAT(err("cliUnknown", "grid:\n  es.directions: [4]\n", {"es.sigmaa=1"}), Catch::Contains("es.sigma"));
  CHECK_THAT(err("cliName", "grid:\n  es.directions: [4]\n", {"run.name=x"}), Catch::Contains("run.name"));

  // base missing; base and config together
  const fs::path d = test::temp_root("sweep") / "nobase";
  write(d / "sweep.yaml", "base: nothere.yaml\ngrid:\n  es.directions: [4]\n");
  CHECK_THAT(error_of([&] { plan_sweep((d / "sweep.yaml").string()); }), Catch::Contains("nothere.yaml"));
  write(d / "both.yaml", "base: x.yaml\nconfig: {task: {name: digits}}\ngrid:\n  es.directions: [4]\n");
  CHECK_THAT(error_of([&] { plan_sweep((d / "both.yaml").string()); }), Catch::Contains("not both"));
}

TEST_CASE("inline config: and overrides: apply to every point; the command line wins", "[sweep]") {
  const fs::path d = test::temp_root("sweep") / "inline";
  write(d / "s.yaml", "name: inl\nconfig:\n  run: {dir: " + (d / "runs").string() +
                          ", steps: 3}\n  model: {init_preset: tiny}\n  task: {name: digits, template: raw}\n"
                          "overrides: [run.steps=5, es.sigma=0.02]\ngrid:\n  es.directions: [4, 6]\n");
  SweepPlan plan = plan_sweep((d / "s.yaml").string(), {"run.steps=7"});
  REQUIRE(plan.points.size() == 2);
  CHECK(plan.points[1].config.es.directions == 6);
  CHECK(plan.points[1].config.es.sigma == 0.02);
  CHECK(plan.points[1].config.run.steps == 7);
  CHECK(plan.points[1].run_dir == (d / "runs" / "inl" / "directions-6").string());
}

TEST_CASE("a dry run lists the points and writes nothing", "[sweep]") {
  const fs::path d = make_sweep("dry", "name: dry\ngrid:\n  es.directions: [4, 8]\n  run.seed: [3]\n");
  std::string out;
  REQUIRE(run_cli((d / "sweep.yaml").string() + " run.steps=3 --dry-run", out) == 0);
  CHECK_THAT(out, Catch::Contains("2 points"));
  CHECK_THAT(out, Catch::Contains("[1/2] directions-4__seed-3"));
  CHECK_THAT(out, Catch::Contains("[2/2] directions-8__seed-3"));
  CHECK_THAT(out, Catch::Contains("es.directions=8 run.seed=3"));
  CHECK_THAT(out, Catch::Contains("new (3 steps)"));
  CHECK_FALSE(fs::exists(d / "runs"));
  // with --slurm as well: the script is printed, not written
  REQUIRE(run_cli((d / "sweep.yaml").string() + " --dry-run --slurm " + (d / "job.sbatch").string(), out) == 0);
  CHECK_THAT(out, Catch::Contains("#SBATCH --array=0-1"));
  CHECK_FALSE(fs::exists(d / "job.sbatch"));
  CHECK_FALSE(fs::exists(d / "runs"));
}

TEST_CASE("--slurm writes a job array with one index per point and the overrides", "[sweep]") {
  const fs::path d = make_sweep("slurm", "name: sl\noverrides: [\"task.stop=it's\"]\n"
                                         "grid:\n  es.directions: [4, 8]\n  run.seed: [0, 1]\n");
  SweepPlan plan = plan_sweep((d / "sweep.yaml").string());
  SlurmOptions so;
  so.eggroll = "/opt/eggroll/bin/eggroll";
  so.ntasks = 2;
  so.max_parallel = 3;
  so.partition = "gpu";
  SlurmFiles f = write_slurm(plan, so, (d / "out" / "sweep.sbatch").string());
  const std::string s = test::slurp(f.script);
  CHECK_THAT(s, Catch::StartsWith("#!/bin/bash"));
  CHECK_THAT(s, Catch::Contains("#SBATCH --array=0-3%3"));
  CHECK_THAT(s, Catch::Contains("#SBATCH --ntasks=2"));
  CHECK_THAT(s, Catch::Contains("#SBATCH --partition=gpu"));
  CHECK_THAT(s, Catch::Contains("/opt/eggroll/bin/eggroll"));
  CHECK_THAT(s, Catch::Contains("BASE='" + (d / "base.yaml").string() + "'"));
  CHECK_THAT(s, Catch::Contains("'task.stop=it'\\''s'"));
  CHECK_THAT(s, Catch::Contains("srun "));
  CHECK_THAT(s, Catch::Contains("scontrol show hostnames"));
  for (const auto& p : plan.points) {
    std::string line = "  " + std::to_string(p.index) + ") NAME='" + p.name + "'; POINT=(";
    for (const auto& ov : p.overrides) line += " '" + ov + "'";
    CHECK_THAT(s, Catch::Contains(line + " ) ;;"));
  }
  CHECK_FALSE(s.find("  4) ") != std::string::npos);
  CHECK(std::system(("bash -n " + f.script).c_str()) == 0);
  CHECK((fs::status(f.script).permissions() & fs::perms::owner_exec) != fs::perms::none);

  CHECK(test::count_lines(f.points) == 5);  // header + 4
  CHECK_THAT(test::slurp(f.points), Catch::Contains("3\tdirections-8__seed-1\t"));
  const auto j = nlohmann::json::parse(test::slurp(fs::path(plan.sweep_dir) / "sweep.json"));
  REQUIRE(j["points"].size() == 4);
  CHECK(j["points"][2]["name"] == "directions-8__seed-0");
  CHECK(j["points"][2]["values"]["es.directions"] == "8");
  // nothing ran
  CHECK_FALSE(fs::exists(fs::path(plan.sweep_dir) / "directions-4__seed-0"));

  // the array task's command line, run with a stand-in srun and eggroll: every override arrives
  // as one argument
  const fs::path bin = d / "bin";
  write(bin / "srun", "#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\nexec \"$@\"\n");
  write(bin / "fake", "#!/bin/bash\nprintf '%s\\n' \"$@\" > " + (d / "argv.txt").string() + "\n");
  fs::permissions(bin / "srun", fs::perms::owner_all, fs::perm_options::add);
  fs::permissions(bin / "fake", fs::perms::owner_all, fs::perm_options::add);
  const std::string cmd = "PATH=" + bin.string() + ":$PATH SLURM_ARRAY_TASK_ID=3 SLURM_NTASKS=1 EGGROLL=" +
                          (bin / "fake").string() + " bash " + f.script + " > /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const std::string argv = test::slurp(d / "argv.txt");
  CHECK(argv == "train\n--quiet\n" + (d / "base.yaml").string() +
                    "\ntask.stop=it's\nes.directions=8\nrun.seed=1\nrun.dir=" + plan.sweep_dir +
                    "\nrun.name=directions-8__seed-1\n");
}

TEST_CASE("a tiny local sweep runs every point, and a second run skips the completed ones", "[sweep][slow]") {
  const fs::path d = make_sweep("local", "name: tiny\ngrid:\n  es.directions: [4, 8]\n");
  SweepRunOptions quiet;
  quiet.quiet = true;
  SweepPlan plan = plan_sweep((d / "sweep.yaml").string());
  SweepRunResult r = run_sweep(plan, quiet);
  CHECK(r.ran == 2);
  CHECK(r.skipped == 0);
  for (const auto& p : plan.points) {
    CHECK(test::count_lines(fs::path(p.run_dir) / "metrics.jsonl") == 2);
    CHECK(completed_steps(p.run_dir) == 2);
    CHECK(point_complete(p));
  }
  CHECK(std::isfinite(r.last_reward[0]));
  const auto j = nlohmann::json::parse(test::slurp(d / "runs" / "tiny" / "sweep.json"));
  CHECK(j["points"].size() == 2);
  CHECK(j["points"][1]["run_dir"] == plan.points[1].run_dir);

  const std::string before = test::slurp(fs::path(plan.points[0].run_dir) / "metrics.jsonl");
  SweepRunResult again = run_sweep(plan_sweep((d / "sweep.yaml").string()), quiet);
  CHECK(again.ran == 0);
  CHECK(again.skipped == 2);
  CHECK(test::slurp(fs::path(plan.points[0].run_dir) / "metrics.jsonl") == before);

  // more steps: both points resume from their final checkpoint (the dry run says so first)
  std::string out;
  REQUIRE(run_cli((d / "sweep.yaml").string() + " run.steps=3 --dry-run", out) == 0);
  CHECK_THAT(out, Catch::Contains("partial (2/3 steps), resumes"));
  SweepPlan longer = plan_sweep((d / "sweep.yaml").string(), {"run.steps=3"});
  SweepRunResult more = run_sweep(longer, quiet);
  CHECK(more.ran == 2);
  for (const auto& p : longer.points) CHECK(test::count_lines(fs::path(p.run_dir) / "metrics.jsonl") == 3);
  CHECK(test::slurp(fs::path(plan.points[0].run_dir) / "metrics.jsonl").rfind(before, 0) == 0);
}
