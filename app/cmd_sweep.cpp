// Command: sweep (a grid of training runs, run here one after another or as a Slurm job array).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>

#include "core/error.h"
#include "app/commands.h"
#include "app/sweep.h"

namespace eggroll {

namespace {

// The running binary, for the job script ("eggroll" when /proc is unavailable).
std::string self_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("eggroll") : p.string();
}

}  // namespace

void register_sweep_commands(CLI::App& app) {
  auto* c = app.add_subcommand(
      "sweep",
      "Run a grid of training runs: sweep SWEEP.yaml [key.path=value ...] [--dry-run] [--slurm OUT.sbatch]");
  struct Opts {
    std::vector<std::string> args;
    bool dry_run = false, quiet = false;
    std::string slurm;
    SlurmOptions so;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("args", o->args, "sweep file, then dotted overrides applied to every point")->required();
  c->add_flag("-n,--dry-run", o->dry_run, "validate and list the points; write and run nothing");
  c->add_option("--slurm", o->slurm,
                "write a Slurm job-array script (one array task per point) and a points list; run nothing");
  c->add_flag("-q,--quiet", o->quiet, "no progress lines (local runs)");
  c->add_option("--ntasks", o->so.ntasks, "--slurm: ranks (GPUs) per point")->capture_default_str();
  c->add_option("--ntasks-per-node", o->so.ntasks_per_node, "--slurm: ranks per node")->capture_default_str();
  c->add_option("--gpus-per-task", o->so.gpus_per_task, "--slurm: GPUs per rank (0 = none requested)")
      ->capture_default_str();
  c->add_option("--cpus-per-task", o->so.cpus_per_task, "--slurm: CPU cores per rank")->capture_default_str();
  c->add_option("--time", o->so.time, "--slurm: time limit per point")->capture_default_str();
  c->add_option("--partition", o->so.partition, "--slurm: partition");
  c->add_option("--account", o->so.account, "--slurm: account");
  c->add_option("--max-parallel", o->so.max_parallel, "--slurm: at most this many points at once (0 = no limit)")
      ->capture_default_str();
  c->add_option("--rendezvous", o->so.rendezvous, "--slurm: mpi (srun --mpi=pmix) or tcp (MASTER_ADDR/PORT)")
      ->capture_default_str();
  c->add_option("--eggroll", o->so.eggroll, "--slurm: the eggroll binary the jobs run (default: this one)");
  c->callback([o] {
    std::string path;
    std::vector<std::string> overrides;
    for (size_t i = 0; i < o->args.size(); i++) {
      const std::string& a = o->args[i];
      if (i == 0) {
        if (a.find('=') != std::string::npos && !std::filesystem::exists(a))
          throw InputError("'" + a + "': expected the sweep file first (sweep SWEEP.yaml [key.path=value ...])");
        path = a;
      } else if (a.find('=') != std::string::npos) {
        overrides.push_back(a);
      } else {
        throw InputError("'" + a + "': expected key.path=value (the sweep file comes first)");
      }
    }
    SweepPlan plan = plan_sweep(path, overrides);
    if (o->so.eggroll == "eggroll") o->so.eggroll = self_path();

    if (o->dry_run) {
      std::cout << describe_plan(plan);
      if (!o->slurm.empty()) {
        std::cout << "--- " << o->slurm << " (dry run: not written) ---\n"
                  << slurm_script(plan, o->so, plan.spec.base_path.empty() ? "(the inline config, written beside the script)"
                                                                         : std::filesystem::absolute(plan.spec.base_path)
                                                                               .lexically_normal()
                                                                               .string(),
                                  "(points list, written beside the script)");
      }
      std::cout << "dry run: nothing written, nothing run\n";
      return;
    }
    if (!o->slurm.empty()) {
      SlurmFiles f = write_slurm(plan, o->so, o->slurm);
      fmt::print("wrote {} ({} array tasks), {}{}, {}/sweep.json\n", f.script, plan.points.size(), f.points,
                 f.base.empty() ? "" : ", " + f.base, plan.sweep_dir);
      fmt::print("submit with: sbatch {}\n", f.script);
      return;
    }
    SweepRunOptions ro;
    ro.quiet = o->quiet;
    ro.progress = !o->quiet;
    if (!o->quiet) fmt::print(stderr, "{}", describe_plan(plan));
    run_sweep(plan, ro);
  });
}

}  // namespace eggroll
