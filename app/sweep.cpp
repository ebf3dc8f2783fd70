#include "app/sweep.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/file_io.h"
#include "app/trainer.h"

namespace eggroll {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxPoints = 100000;

const std::vector<std::string>& sweep_keys() {
  static const std::vector<std::string> k = {"name", "base", "config", "overrides", "grid"};
  return k;
}

std::string at(const std::string& file, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.is_null() || m.line < 0) return file;
  return fmt::format("{}:{}:{}", file, m.line + 1, m.column + 1);
}

bool valid_name(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 200) return false;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// A grid value as the YAML text of a `key=value` override. Plain scalars stay as written
// ("16", "1e-3"); quoted ones are re-quoted; sequences become flow sequences.
std::string value_text(const YAML::Node& n, const std::string& where) {
  if (n.IsNull()) return "null";
  if (n.IsScalar()) {
    if (n.Tag() == "!") return config::yaml_double_quoted(n.Scalar());  // quoted in the file
    return n.Scalar();
  }
  if (n.IsSequence()) {
    std::string s = "[";
    for (size_t i = 0; i < n.size(); i++) {
      if (n[i].IsSequence() || n[i].IsMap())
        throw InputError(where + ": a list value may hold only plain values");
      s += (i ? ", " : "") + value_text(n[i], where);
    }
    return s + "]";
  }
  throw InputError(where + ": expected a value (a number, a string or a list), got a mapping");
}

// The YAML text of a mapping node (block style), for an inline `config:`.
std::string emit(const YAML::Node& n) {
  YAML::Emitter e;
  e << n;
  return std::string(e.c_str()) + "\n";
}

std::string suggest_sweep_key(const std::string& k) {
  std::string best;
  size_t best_d = 3;
  for (const auto& c : sweep_keys()) {
    const size_t d = config::edit_distance(k, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

struct GridEntry {
  std::string key;
  YAML::Node values;
  std::string where;  // file:line:col of the key
};

void flatten_grid(const YAML::Node& map, const std::string& prefix, const std::string& file,
                  std::vector<GridEntry>& out) {
  const auto& schema = train_config_schema();
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    if (!k.IsScalar()) throw InputError(at(file, k) + ": grid: keys must be dotted config keys");
    const std::string key = prefix.empty() ? k.Scalar() : prefix + "." + k.Scalar();
    if (!schema.index_of(key) && schema.is_section(key) && v.IsMap()) {
      flatten_grid(v, key, file, out);
      continue;
    }
    out.push_back({key, v, at(file, k)});
  }
}

void check_override(const std::string& ov, const std::string& where, const SweepSpec& spec) {
  const auto& schema = train_config_schema();
  if (ov.find('=') == std::string::npos) throw InputError(where + ": '" + ov + "': expected key.path=value");
  const std::string key = config::override_key(ov);
  if (key.empty()) throw InputError(where + ": '" + ov + "': expected key.path=value (the key is empty)");
  if (!schema.index_of(key)) {
    if (schema.is_section(key))
      throw InputError(where + ": '" + ov + "': '" + key + "' is a section, not a key");
    throw InputError(where + ": '" + ov + "': " + config::unknown_key_message(schema, key));
  }
  if (key == "run.name")
    throw InputError(where + ": '" + ov + "': run.name is set by the sweep (runs/<sweep name>/<point>); set the "
                     "sweep's name instead");
  for (const auto& [gk, vals] : spec.grid) {
    if (gk == key)
      throw InputError(where + ": '" + ov + "': " + key + " is swept by the grid; change the grid instead");
  }
}

std::string sanitize(const std::string& text) {
  std::string s;
  for (char ch : text) {
    if (ch == '"' || ch == '\'') continue;
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                    ch == '+' || ch == '-';
    s += ok ? ch : '_';
  }
  return s.empty() ? "none" : s;
}

std::string last_component(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); i++) s += (i ? sep : "") + v[i];
  return s;
}

std::string point_label(const SweepPoint& p, size_t n) {
  return fmt::format("point {}/{} '{}' ({})", p.index + 1, n, p.name, join(p.overrides, ", "));
}

TrainConfig load_point(const SweepSpec& spec, const std::vector<std::string>& overrides) {
  if (!spec.base_path.empty()) return load_train_config(spec.base_path, overrides);
  return from_config(config::load_string(train_config_schema(), spec.inline_config, spec.file + " (config:)",
                                         overrides));
}

}  // namespace

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& cli_overrides) {
  SweepSpec spec;
  spec.file = path;
  const std::string text = read_file(path, "sweep file");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw InputError(fmt::format("{}:{}:{}: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const YAML::Exception& e) {
    throw InputError(path + ": " + e.msg);
  }
  if (root.IsNull()) throw InputError(path + ": empty sweep file (expected base: or config:, and grid:)");
  if (!root.IsMap()) throw InputError(at(path, root) + ": expected a mapping (name:, base:, grid:, ...) at the top level");

  std::set<std::string> seen;
  YAML::Node name, base, inline_cfg, overrides, grid;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    if (!k.IsScalar()) throw InputError(at(path, k) + ": sweep keys must be plain names");
    const std::string key = k.Scalar();
    if (!seen.insert(key).second) throw InputError(at(path, k) + ": duplicate key '" + key + "'");
    if (key == "name") name = v;
    else if (key == "base") base = v;
    else if (key == "config") inline_cfg = v;
    else if (key == "overrides") overrides = v;
    else if (key == "grid") grid = v;
    else {
      std::string msg = at(path, k) + ": unknown key '" + key + "' in a sweep file";
      const std::string sug = suggest_sweep_key(key);
      if (!sug.empty()) msg += " (did you mean '" + sug + "'?)";
      msg += "; the keys are " + join(sweep_keys(), ", ");
      throw InputError(msg);
    }
  }

  // name
  if (name && !name.IsNull()) {
    if (!name.IsScalar()) throw InputError(at(path, name) + ": name: expected a string");
    spec.name = name.Scalar();
  } else {
    spec.name = fs::path(path).stem().string();
  }
  if (!valid_name(spec.name))
    throw InputError(at(path, name ? name : root) + ": name: '" + spec.name +
                     "' is not a valid sweep name (non-empty, no '/', '\\' or control characters, not '.' or '..')");

  // base / config
  const bool has_base = base && !base.IsNull(), has_cfg = inline_cfg && !inline_cfg.IsNull();
  if (has_base && has_cfg) throw InputError(at(path, inline_cfg) + ": set either base: (a config file) or config: (inline), not both");
  if (!has_base && !has_cfg) throw InputError(path + ": missing key 'base' (the base train config, relative to the sweep file) or 'config' (inline)");
  if (has_base) {
    if (!base.IsScalar() || base.Scalar().empty()) throw InputError(at(path, base) + ": base: expected a config file path");
    fs::path b = base.Scalar();
    if (b.is_relative()) b = fs::path(path).parent_path() / b;
    b = b.lexically_normal();
    std::error_code ec;
    if (!fs::is_regular_file(b, ec))
      throw InputError(at(path, base) + ": base: '" + base.Scalar() + "' not found (looked for " + b.string() +
                       "; a relative base is relative to the sweep file)");
    spec.base_path = b.string();
  } else {
    if (!inline_cfg.IsMap()) throw InputError(at(path, inline_cfg) + ": config: expected a mapping of train config keys");
    spec.inline_config = emit(inline_cfg);
  }

  // grid
  if (!grid || grid.IsNull()) throw InputError(path + ": missing key 'grid' (dotted config keys -> lists of values)");
  if (!grid.IsMap()) throw InputError(at(path, grid) + ": grid: expected a mapping of dotted keys to lists of values");
  std::vector<GridEntry> flat;
  flatten_grid(grid, "", path, flat);
  if (flat.empty()) throw InputError(at(path, grid) + ": grid: empty (give at least one key with a list of values)");
  const auto& schema = train_config_schema();
  size_t total = 1;
  for (const auto& [key, v, where] : flat) {
    const std::string gw = where + ": grid: " + key;
    if (!schema.index_of(key)) throw InputError(where + ": grid: " + config::unknown_key_message(schema, key));
    if (key == "run.name" || key == "run.dir")
      throw InputError(gw + ": set by the sweep (run directories are <run.dir>/<sweep name>/<point>); it cannot be swept");
    for (const auto& [k2, vals] : spec.grid)
      if (k2 == key) throw InputError(where + ": grid: duplicate key '" + key + "'");
    if (!v.IsSequence()) throw InputError(gw + ": expected a list of values (e.g. [8, 16, 32])");
    if (v.size() == 0) throw InputError(gw + ": the list of values is empty");
    std::vector<std::string> vals;
    for (size_t i = 0; i < v.size(); i++) {
      std::string t = value_text(v[i], fmt::format("{} (value {})", gw, i + 1));
      for (const auto& prev : vals)
        if (prev == t) throw InputError(gw + ": value " + t + " is listed twice");
      vals.push_back(std::move(t));
    }
    total *= vals.size();
    if (total > kMaxPoints) throw InputError(fmt::format("{}: grid: more than {} points", path, kMaxPoints));
    spec.grid.emplace_back(key, std::move(vals));
  }

  // overrides: the file's, then the command line's
  if (overrides && !overrides.IsNull()) {
    if (overrides.IsSequence()) {
      for (size_t i = 0; i < overrides.size(); i++) {
        if (!overrides[i].IsScalar()) throw InputError(at(path, overrides[i]) + ": overrides: expected key.path=value strings");
        spec.overrides.push_back(overrides[i].Scalar());
      }
    } else if (overrides.IsMap()) {
      for (auto it = overrides.begin(); it != overrides.end(); ++it) {
        const YAML::Node k = it->first;
        if (!k.IsScalar()) throw InputError(at(path, k) + ": overrides: keys must be dotted config keys");
        spec.overrides.push_back(k.Scalar() + "=" + value_text(it->second, at(path, it->second) + ": overrides: " + k.Scalar()));
      }
    } else {
      throw InputError(at(path, overrides) + ": overrides: expected a list of key.path=value (or a mapping of dotted keys)");
    }
    for (const auto& ov : spec.overrides) check_override(ov, at(path, overrides) + ": overrides", spec);
  }
  for (const auto& ov : cli_overrides) {
    check_override(ov, "override", spec);
    spec.overrides.push_back(ov);
  }
  return spec;
}

std::string point_name(const std::vector<std::pair<std::string, std::string>>& values) {
  std::vector<std::string> parts;
  for (const auto& [key, text] : values) {
    std::string label = last_component(key);
    for (const auto& [k2, t2] : values)
      if (k2 != key && last_component(k2) == label) label = key;
    parts.push_back(label + "-" + sanitize(text));
  }
  return join(parts, "__");
}

SweepPlan plan_sweep(const SweepSpec& spec) {
  SweepPlan plan;
  plan.spec = spec;
  size_t n = 1;
  for (const auto& g : spec.grid) n *= g.second.size();
  std::vector<size_t> idx(spec.grid.size(), 0);
  std::set<std::string> names;
  for (size_t i = 0; i < n; i++) {
    SweepPoint p;
    p.index = i;
    for (size_t k = 0; k < spec.grid.size(); k++) {
      const auto& [key, vals] = spec.grid[k];
      p.values.emplace_back(key, vals[idx[k]]);
      p.overrides.push_back(key + "=" + vals[idx[k]]);
    }
    p.name = point_name(p.values);
    if (!names.insert(p.name).second)
      throw InputError(spec.file + ": " + point_label(p, n) +
                       ": two points have the same run name (values differ only in characters a name cannot hold)");
    std::vector<std::string> ov = spec.overrides;
    ov.insert(ov.end(), p.overrides.begin(), p.overrides.end());
    ov.push_back("run.name=" + p.name);
    try {
      p.config = load_point(spec, ov);
      p.config.run.dir = (fs::path(p.config.run.dir) / spec.name).string();
      validate(p.config);
      p.run_dir = run_directory(p.config);
      const fs::path saved = fs::path(p.run_dir) / "config.yaml";
      std::error_code ec;
      if (fs::exists(saved, ec)) require_resumable(load_train_config(saved.string()), saved.string(), p.config);
    } catch (const InputError& e) {
      throw InputError(spec.file + ": " + point_label(p, n) + ": " + e.what());
    }
    plan.points.push_back(std::move(p));
    // odometer: the last key varies fastest
    for (size_t k = spec.grid.size(); k-- > 0;) {
      if (++idx[k] < spec.grid[k].second.size()) break;
      idx[k] = 0;
    }
  }
  plan.sweep_dir = plan.points.empty() ? std::string() : fs::path(plan.points[0].run_dir).parent_path().string();
  return plan;
}

SweepPlan plan_sweep(const std::string& path, const std::vector<std::string>& cli_overrides) {
  return plan_sweep(load_sweep_spec(path, cli_overrides));
}

bool point_complete(const SweepPoint& p) { return completed_steps(p.run_dir) >= p.config.run.steps; }

std::string sweep_json(const SweepPlan& plan) {
  nlohmann::json j;
  j["name"] = plan.spec.name;
  j["sweep_file"] = plan.spec.file;
  j["base"] = plan.spec.base_path.empty() ? std::string("(inline config:)") : plan.spec.base_path;
  j["sweep_dir"] = plan.sweep_dir;
  j["overrides"] = plan.spec.overrides;
  nlohmann::json grid = nlohmann::json::array();
  for (const auto& [key, vals] : plan.spec.grid) grid.push_back({{"key", key}, {"values", vals}});
  j["grid"] = grid;
  nlohmann::json pts = nlohmann::json::array();
  for (const auto& p : plan.points) {
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [k, v] : p.values) values[k] = v;
    pts.push_back({{"index", p.index},
                   {"name", p.name},
                   {"values", values},
                   {"overrides", p.overrides},
                   {"run_dir", p.run_dir},
                   {"steps", p.config.run.steps}});
  }
  j["points"] = pts;
  return j.dump(2) + "\n";
}

void write_sweep_json(const SweepPlan& plan) {
  if (!plan.sweep_dir.empty()) fs::create_directories(plan.sweep_dir);
  write_file_atomic((fs::path(plan.sweep_dir) / "sweep.json").string(), sweep_json(plan));
}

std::string describe_plan(const SweepPlan& plan) {
  std::vector<std::string> dims;
  std::vector<std::string> sizes;
  for (const auto& [key, vals] : plan.spec.grid) {
    dims.push_back(key);
    sizes.push_back(std::to_string(vals.size()));
  }
  std::string s = fmt::format("sweep '{}': {} point{} ({} = {}), base {}\n", plan.spec.name, plan.points.size(),
                              plan.points.size() == 1 ? "" : "s", join(dims, " x "), join(sizes, " x "),
                              plan.spec.base_path.empty() ? "(inline config:)" : plan.spec.base_path);
  if (!plan.spec.overrides.empty()) s += "every point: " + join(plan.spec.overrides, " ") + "\n";
  s += "sweep directory: " + plan.sweep_dir + "\n";
  size_t w = 0, wo = 0;
  for (const auto& p : plan.points) w = std::max(w, p.name.size()), wo = std::max(wo, join(p.overrides, " ").size());
  const size_t wi = fmt::format("[{}/{}]", plan.points.size(), plan.points.size()).size();
  for (const auto& p : plan.points) {
    const int done = completed_steps(p.run_dir);
    std::string state = done >= p.config.run.steps ? fmt::format("complete ({}/{} steps), skipped", done, p.config.run.steps)
                        : done > 0                 ? fmt::format("partial ({}/{} steps), resumes", done, p.config.run.steps)
                                                   : fmt::format("new ({} steps)", p.config.run.steps);
    s += fmt::format("  {:<{}} {:<{}}  {:<{}}  -> {}  {}\n", fmt::format("[{}/{}]", p.index + 1, plan.points.size()),
                     wi, p.name, w, join(p.overrides, " "), wo, p.run_dir, state);
  }
  return s;
}

SweepRunResult run_sweep(const SweepPlan& plan, const SweepRunOptions& options) {
  write_sweep_json(plan);
  SweepRunResult r;
  const size_t n = plan.points.size();
  auto say = [&](const std::string& line) {
    if (!options.quiet) fmt::print(stderr, "[sweep] {}\n", line);
  };
  const auto t_all = std::chrono::steady_clock::now();
  for (const auto& p : plan.points) {
    const std::string label = fmt::format("point {}/{} {}", p.index + 1, n, p.name);
    const int done = completed_steps(p.run_dir);
    if (done >= p.config.run.steps) {
      say(fmt::format("{}: complete ({}/{} steps), skipped", label, done, p.config.run.steps));
      r.skipped++;
      r.last_reward.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    say(fmt::format("{}: {} ({}){}", label, done > 0 ? "resuming" : "running", join(p.overrides, " "),
                    done > 0 ? fmt::format(" from step {}", done) : std::string()));
    TrainHooks hooks;
    hooks.progress = options.progress && !options.quiet;
    const auto t0 = std::chrono::steady_clock::now();
    TrainResult tr;
    try {
      tr = train(p.config, hooks);
    } catch (const InputError& e) {
      throw InputError(plan.spec.file + ": " + point_label(p, n) + ": " + e.what());
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      throw std::runtime_error(plan.spec.file + ": " + point_label(p, n) + ": " + e.what());
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    say(fmt::format("{}: done, {} steps, last mean reward {:.4f}, {:.1f} s, {}", label, tr.steps_done,
                    tr.last_reward_mean, secs, tr.run_dir));
    r.ran++;
    r.last_reward.push_back(tr.last_reward_mean);
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  say(fmt::format("done: {} ran, {} skipped, {:.1f} s; report: python3 scripts/report.py {}", r.ran, r.skipped, total,
                  plan.sweep_dir));
  return r;
}

std::string points_list(const SweepPlan& plan) {
  std::string s = "# index\tname\trun_dir\toverrides\n";
  for (const auto& p : plan.points) {
    std::vector<std::string> q;
    for (const auto& o : p.overrides) q.push_back(shell_quote(o));
    s += fmt::format("{}\t{}\t{}\t{}\n", p.index, p.name, p.run_dir, join(q, " "));
  }
  return s;
}

std::string slurm_script(const SweepPlan& plan, const SlurmOptions& o, const std::string& base_for_script,
                         const std::string& points_file) {
  if (plan.points.empty()) throw InputError("sweep has no points");
  if (o.ntasks < 1 || o.ntasks_per_node < 1 || o.gpus_per_task < 0 || o.cpus_per_task < 1 || o.max_parallel < 0)
    throw InputError("--slurm: task counts must be >= 1 (gpus-per-task, max-parallel >= 0)");
  if (o.rendezvous != "mpi" && o.rendezvous != "tcp")
    throw InputError("--rendezvous: expected mpi or tcp, got '" + o.rendezvous + "'");
  const int per_node = std::min(o.ntasks_per_node, o.ntasks);
  const int nodes = (o.ntasks + per_node - 1) / per_node;
  const std::string workdir = o.workdir.empty() ? fs::current_path().string() : o.workdir;
  const fs::path logs = fs::absolute(fs::path(workdir) / plan.sweep_dir / "slurm-logs");
  const size_t n = plan.points.size();

  std::string s;
  s += "#!/bin/bash\n";
  s += fmt::format("# Slurm job array for the eggroll sweep '{}' ({} points), written by\n", plan.spec.name, n);
  s += fmt::format("#   eggroll sweep {} --slurm ...\n", plan.spec.file);
  s += "# Submit:     sbatch THIS_SCRIPT\n";
  s += "# Some points only (e.g. after a failure): sbatch --array=3,5 THIS_SCRIPT\n";
  s += "# A point that already finished exits at once (its final checkpoint exists); an unfinished\n";
  s += "# one resumes from its latest checkpoint, so resubmitting the whole array is safe.\n";
  s += fmt::format("# Points (index, name, run directory, overrides): {}\n", points_file);
  s += fmt::format("# Results: {}/<point>/metrics.jsonl; report: python3 scripts/report.py {}\n", plan.sweep_dir,
                   plan.sweep_dir);
  s += fmt::format("#SBATCH --job-name={}\n", plan.spec.name);
  s += fmt::format("#SBATCH --array=0-{}{}\n", n - 1, o.max_parallel > 0 ? fmt::format("%{}", o.max_parallel) : "");
  s += fmt::format("#SBATCH --nodes={}\n", nodes);
  s += fmt::format("#SBATCH --ntasks={}\n", o.ntasks);
  s += fmt::format("#SBATCH --ntasks-per-node={}\n", per_node);
  if (o.gpus_per_task > 0) s += fmt::format("#SBATCH --gpus-per-task={}\n", o.gpus_per_task);
  s += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_task);
  s += fmt::format("#SBATCH --time={}\n", o.time);
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", o.partition);
  if (!o.account.empty()) s += fmt::format("#SBATCH --account={}\n", o.account);
  s += fmt::format("#SBATCH --output={}/%x_%A_%a.out\n", logs.string());
  s += "\nset -eo pipefail\n\n";
  s += "# The binary, the base config and the directory run.dir is relative to (absolute paths).\n";
  s += fmt::format("EGGROLL=\"${{EGGROLL:-{}}}\"\n", o.eggroll);
  s += fmt::format("BASE={}\n", shell_quote(base_for_script));
  s += fmt::format("WORKDIR={}\n", shell_quote(workdir));
  s += "# How the ranks of one point find each other (only matters with more than one task):\n";
  s += "#   mpi: srun --mpi=pmix starts MPI ranks (dist.backend auto/mpi, or nccl with its id sent over MPI)\n";
  s += "#   tcp: no MPI; rank 0 listens on MASTER_ADDR:MASTER_PORT (dist.backend=tcp, or BACKEND=nccl: only its id)\n";
  s += fmt::format("RENDEZVOUS=\"${{RENDEZVOUS:-{}}}\"\n", o.rendezvous);
  s += "MASTER_PORT_BASE=\"${MASTER_PORT_BASE:-29500}\"   # + array index: concurrent points on one node do not collide\n";
  s += "export NCCL_DEBUG=\"${NCCL_DEBUG:-WARN}\"\n";
  s += "# export NCCL_SOCKET_IFNAME=ib0     # the interface NCCL's bootstrap uses (eth0, ens..., ib0)\n";
  s += "# export NCCL_IB_HCA=mlx5          # the InfiniBand adapters to use\n";
  s += "export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n\n";
  s += "# Every point: the sweep's common overrides.\n";
  s += "COMMON=(";
  for (const auto& ov : plan.spec.overrides) s.append(" ").append(shell_quote(ov));
  s += " )\n\n";
  s += "case \"${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (it is a job array)}\" in\n";
  for (const auto& p : plan.points) {
    s += fmt::format("  {}) NAME={}; POINT=(", p.index, shell_quote(p.name));
    for (const auto& ov : p.overrides) s.append(" ").append(shell_quote(ov));
    s += " ) ;;\n";
  }
  s += "  *) echo \"no sweep point with index $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\n";
  s += "esac\n";
  s += fmt::format("RUN=( {} \"run.name=$NAME\" )\n\n", shell_quote("run.dir=" + plan.sweep_dir));
  s += "SRUN_OPTS=()\n";
  s += "DIST=()\n";
  s += "if [ \"${SLURM_NTASKS:-1}\" -gt 1 ]; then\n";
  s += "  if [ \"$RENDEZVOUS\" = tcp ]; then\n";
  s += "    MASTER_ADDR=\"$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\"\n";
  s += "    MASTER_PORT=$((MASTER_PORT_BASE + SLURM_ARRAY_TASK_ID % 1000))\n";
  s += "    export MASTER_ADDR MASTER_PORT\n";
  s += "    SRUN_OPTS=(--mpi=none)\n";
  s += "    DIST=(\"dist.backend=${BACKEND:-tcp}\" dist.rendezvous=tcp \"dist.rendezvous_path=$MASTER_ADDR:$MASTER_PORT\")\n";
  s += "  else\n";
  s += "    SRUN_OPTS=(--mpi=pmix)\n";
  s += "    DIST=(dist.rendezvous=mpi)\n";
  s += "  fi\n";
  s += "fi\n\n";
  s += "cd \"$WORKDIR\"\n";
  s += "echo \"[sweep] point $SLURM_ARRAY_TASK_ID: $NAME (${POINT[*]}) on $(hostname), $SLURM_NTASKS task(s)\"\n";
  s += "srun \"${SRUN_OPTS[@]}\" \"$EGGROLL\" train --quiet \"$BASE\" \"${COMMON[@]}\" \"${POINT[@]}\" \"${RUN[@]}\" "
       "\"${DIST[@]}\"\n";
  return s;
}

SlurmFiles write_slurm(const SweepPlan& plan, const SlurmOptions& options, const std::string& script_path) {
  SlurmFiles f;
  const fs::path script = fs::absolute(script_path);
  const fs::path dir = script.parent_path();
  f.script = script.string();
  f.points = (dir / (script.stem().string() + ".points.tsv")).string();
  std::string base = plan.spec.base_path.empty() ? std::string() : fs::absolute(plan.spec.base_path).lexically_normal().string();
  if (base.empty()) {
    f.base = (dir / (script.stem().string() + ".base.yaml")).string();
    base = f.base;
  }
  const std::string text = slurm_script(plan, options, base, f.points);  // validates options first
  fs::create_directories(dir);
  if (!f.base.empty()) write_file_atomic(f.base, "# the inline config: of " + plan.spec.file + "\n" + plan.spec.inline_config);
  write_file_atomic(f.points, points_list(plan));
  write_file_atomic(f.script, text);
  fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
  const std::string workdir = options.workdir.empty() ? fs::current_path().string() : options.workdir;
  fs::create_directories(fs::path(workdir) / plan.sweep_dir / "slurm-logs");
  write_sweep_json(plan);
  return f;
}

}  // namespace eggroll
