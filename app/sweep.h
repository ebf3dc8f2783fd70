#pragma once
// `eggroll sweep SWEEP.yaml`: a grid of training runs (population size x seeds x any key).
//
// SWEEP.yaml:
//   name: popsweep                 # sweep name ("" / absent = the sweep file's stem)
//   base: ../../configs/x.yaml     # base train config, relative to the sweep file
//   # or, instead of base:
//   # config: {run: {steps: 10}, model: {init_preset: tiny}, task: {name: digits}}
//   overrides: [run.steps=15]      # optional: key=value applied to every point
//   grid:                          # dotted train-config keys -> lists of values
//     es.directions: [8, 16, 32]
//     run.seed: [0, 1]
//
// Points are the cartesian product of the grid in file order: the first key varies slowest,
// the last fastest (nested for-loops, like itertools.product). Point i's train config is
// the base + `overrides:` + command-line overrides + the point's values, with
//   run.dir  = <the base's run.dir>/<sweep name>      (e.g. runs/popsweep)
//   run.name = <label>-<value>__<label>-<value>...     (e.g. directions-16__seed-1)
// so its run directory is runs/popsweep/directions-16__seed-1. A label is the key's last
// component (es.directions -> directions), or the whole dotted key when two grid keys share
// a last component (run.seed, task.seed). Values keep [A-Za-z0-9.+-]; other characters
// become '_' and an empty value is written "none". Two points with the same name are an error.
//
// Every point is validated before anything runs or is written; an error names the point and
// the key. The sweep directory runs/<name>/ receives sweep.json (the points, their overrides
// and run directories), read by scripts/report.py.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "app/run_dir.h"
#include "app/train_config.h"

namespace eggroll {

struct SweepSpec {
  std::string file;                     // the sweep file as given
  std::string name;                     // sweep name (a valid run name)
  std::string base_path;                // base config path (resolved against the sweep file's
                                        // directory), or "" with an inline config
  std::string inline_config;            // YAML text of `config:` ("" with base)
  std::vector<std::string> overrides;   // `overrides:` of the file, then the command line's
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;  // key -> values (YAML text)
};

struct SweepPoint {
  size_t index = 0;                                         // 0-based, grid order
  std::string name;                                         // run name
  std::vector<std::pair<std::string, std::string>> values;  // grid key -> value text
  std::vector<std::string> overrides;                       // "key=value" for the grid values
  TrainConfig config;                                       // resolved (run.dir, run.name set)
  std::string run_dir;                                      // run_directory(config)
};

struct SweepPlan {
  SweepSpec spec;
  std::string sweep_dir;  // <base run.dir>/<name>: where sweep.json goes
  std::vector<SweepPoint> points;
};

// Reads and checks a sweep file (unknown keys, grid keys, value lists); cli_overrides
// ("key=value") apply to every point and may not set a grid key or run.name. InputError.
SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& cli_overrides = {});

// Expands the grid and validates every point (the train config loads; an existing run
// directory's config.yaml is resumable with it). InputError naming the point and the key.
SweepPlan plan_sweep(const SweepSpec& spec);
SweepPlan plan_sweep(const std::string& path, const std::vector<std::string>& cli_overrides = {});

// The name of a point from its (key, value text) pairs (see the naming rule above).
std::string point_name(const std::vector<std::pair<std::string, std::string>>& values);

// True when the run's latest checkpoint is at (or past) run.steps.
bool point_complete(const SweepPoint& p);

// sweep.json: {"name", "sweep_file", "base", "overrides", "grid", "points": [{"index",
// "name", "values", "overrides", "run_dir"}]}.
std::string sweep_json(const SweepPlan& plan);
// Writes <sweep_dir>/sweep.json (atomically).
void write_sweep_json(const SweepPlan& plan);

// The dry-run listing: one line per point with its overrides, run directory and state.
std::string describe_plan(const SweepPlan& plan);

struct SweepRunOptions {
  bool progress = true;  // the trainer's live progress line (on a terminal)
  bool quiet = false;    // no per-point lines either
};
struct SweepRunResult {
  size_t ran = 0, skipped = 0;
  std::vector<double> last_reward;  // per point; NaN when skipped
};
// Runs the points one after another in this process (train()): complete points are skipped,
// partial ones resume. Writes sweep.json first. Prints "[sweep] point i/n ..." on stderr.
SweepRunResult run_sweep(const SweepPlan& plan, const SweepRunOptions& options = {});

struct SlurmOptions {
  std::string eggroll = "eggroll";  // binary the array tasks run (an absolute path is best)
  std::string workdir;              // directory the tasks cd into ("" = the current directory)
  int ntasks = 1;                   // ranks per point (one per GPU)
  int ntasks_per_node = 1;
  int gpus_per_task = 1;
  int cpus_per_task = 8;
  std::string time = "04:00:00";
  std::string partition;            // "" = the cluster's default
  std::string account;              // "" = none
  int max_parallel = 0;             // array throttle (%N); 0 = none
  std::string rendezvous = "mpi";   // mpi (srun --mpi=pmix) | tcp (MASTER_ADDR/MASTER_PORT)
};
// A Slurm job-array script: one array task per point (index = point index), each running
// `srun eggroll train <base> <overrides>`. `base_for_script` is the base config path the
// script uses (absolute).
std::string slurm_script(const SweepPlan& plan, const SlurmOptions& options, const std::string& base_for_script,
                         const std::string& points_file);
// The points list: "# index<TAB>name<TAB>run_dir<TAB>overrides" then one line per point.
std::string points_list(const SweepPlan& plan);

struct SlurmFiles {
  std::string script, points, base;  // base: the inline config written beside the script ("" with base:)
};
// Writes the script (executable), <script stem>.points.tsv beside it, the inline base config
// when the sweep has one, and sweep.json. Runs nothing.
SlurmFiles write_slurm(const SweepPlan& plan, const SlurmOptions& options, const std::string& script_path);

// Single-quoted for a POSIX shell ('it'\''s').
std::string shell_quote(const std::string& s);

}  // namespace eggroll
