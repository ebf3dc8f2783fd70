#include "app/train_config.h"

#include <climits>
#include <filesystem>
#include <functional>
#include <stdexcept>

#include "app/plan.h"
#include "core/error.h"
#include "core/gemm_bf16.h"

namespace eggroll {

namespace {

using config::at_least;
using config::at_most;
using config::Bound;
using config::Config;
using config::greater_than;
using config::less_than;
using config::Schema;

// One key: its schema entry plus how to move its value between TrainConfig and Config.
struct Binding {
  std::string key;
  std::function<void(const Config&, TrainConfig&)> load;
  std::function<void(const TrainConfig&, Config&)> store;
};

struct Table {
  Schema schema;
  std::vector<Binding> bindings;
};

// Declares keys with their defaults read from a default-constructed TrainConfig.
class Builder {
 public:
  explicit Builder(Table& t) : t_(t) {}

  template <typename F>
  void boolean(const std::string& key, F field, const std::string& doc) {
    t_.schema.boolean(key, field(defaults_), doc);
    bind_field(key, field, &Config::get_bool, &Config::set_bool);
  }
  template <typename F>
  void integer(const std::string& key, F field, const std::string& doc,
               std::optional<Bound> min = std::nullopt, std::optional<Bound> max = std::nullopt) {
    t_.schema.integer(key, field(defaults_), doc, min, max);
    bind_field(key, field, &Config::get_int, &Config::set_int);
  }
  template <typename F>
  void uint64(const std::string& key, F field, const std::string& doc) {
    t_.schema.uint64(key, field(defaults_), doc);
    bind_field(key, field, &Config::get_uint64, &Config::set_uint64);
  }
  template <typename F>
  void real(const std::string& key, F field, const std::string& doc,
            std::optional<Bound> min = std::nullopt, std::optional<Bound> max = std::nullopt) {
    t_.schema.real(key, field(defaults_), doc, min, max);
    bind_field(key, field, &Config::get_double, &Config::set_double);
  }
  template <typename F>
  void string(const std::string& key, F field, const std::string& doc) {
    t_.schema.string(key, field(defaults_), doc);
    bind_field(key, field, &Config::get_string, &Config::set_string);
  }
  template <typename F>
  void enumeration(const std::string& key, F field, std::vector<std::string> choices,
                   const std::string& doc, bool required = false) {
    std::optional<std::string> def;
    if (!required) def = field(defaults_);
    t_.schema.enumeration(key, std::move(choices), def, doc);
    bind_field(key, field, &Config::get_string, &Config::set_string);
  }
  template <typename F>
  void list(const std::string& key, F field, const std::string& doc) {
    t_.schema.string_list(key, field(defaults_), doc);
    bind_field(key, field, &Config::get_list, &Config::set_list);
  }

 private:
  // Moves `field` through Config's typed getter and setter (get_int / set_int, ...).
  template <typename F, typename Get, typename Set>
  void bind_field(const std::string& key, F field, Get get, Set set) {
    bind(key, [=](const Config& c, TrainConfig& tc) { field(tc) = (c.*get)(key); },
         [=](const TrainConfig& tc, Config& c) { (c.*set)(key, field(tc)); });
  }
  void bind(const std::string& key, std::function<void(const Config&, TrainConfig&)> load,
            std::function<void(const TrainConfig&, Config&)> store) {
    t_.bindings.push_back({key, std::move(load), std::move(store)});
  }

  Table& t_;
  const TrainConfig defaults_{};
};

// A reference to one field, usable on const and non-const TrainConfig.
#define EGGROLL_FIELD(path) [](auto& tc) -> auto& { return tc.path; }

Table make_table() {
  Table t;
  Builder b(t);

  // run
  b.string("run.name", EGGROLL_FIELD(run.name), "run directory name under run.dir (\"\" = config file stem)");
  b.string("run.dir", EGGROLL_FIELD(run.dir), "parent directory of run directories");
  b.uint64("run.seed", EGGROLL_FIELD(run.seed), "run seed (noise keys)");
  b.integer("run.steps", EGGROLL_FIELD(run.steps), "ES steps", at_least(1));
  b.integer("run.checkpoint_every", EGGROLL_FIELD(run.checkpoint_every),
            "checkpoint every N steps (0 = only at the end)", at_least(0));
  b.integer("run.keep_checkpoints", EGGROLL_FIELD(run.keep_checkpoints),
            "checkpoints kept (older ones deleted)", at_least(1));
  b.integer("run.samples_per_step", EGGROLL_FIELD(run.samples_per_step),
            "generations logged to samples.jsonl per step", at_least(0));
  b.integer("run.eval_every", EGGROLL_FIELD(run.eval_every), "validate every N steps (0 = never)",
            at_least(0));
  b.integer("run.log_every", EGGROLL_FIELD(run.log_every), "refresh the console progress line every N steps", at_least(1));
  b.integer("run.threads", EGGROLL_FIELD(run.threads),
            "CPU threads (0 = EGGROLL_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this process may use)",
            at_least(0));
  b.enumeration("run.device", EGGROLL_FIELD(run.device), {"cpu", "cuda"},
                "where the population step runs: cpu, or cuda (one GPU per process)");

  // model
  b.string("model.path", EGGROLL_FIELD(model.path), "checkpoint to fine-tune (\"\" = none)");
  b.enumeration("model.init_preset", EGGROLL_FIELD(model.init_preset),
                {"", "tiny", "0.1b", "0.4b", "1.5b", "2.9b", "7.2b", "13.3b"},
                "random-init model size instead of model.path");
  b.uint64("model.init_seed", EGGROLL_FIELD(model.init_seed), "seed of the random init");
  b.enumeration("model.init_dtype", EGGROLL_FIELD(model.init_dtype), {"f32", "bf16", "f16"},
                "weight dtype of the random init");
  b.enumeration("model.matrix_dtype", EGGROLL_FIELD(model.matrix_dtype), {"auto", "f32", "bf16"},
                "dtype of the matrix products: f32, bf16 (fp32 masters for trained matrices), or auto "
                "(bf16 for a 16-bit model on a device with bf16 products)");
  b.string("model.vocab", EGGROLL_FIELD(model.vocab),
           "World vocab file, or \"byte\" for byte-level models (V = 256)");

  // es
  b.integer("es.directions", EGGROLL_FIELD(es.directions),
            "population size N (even: antithetic pairs)", at_least(2));
  b.integer("es.prompts_per_step", EGGROLL_FIELD(es.prompts_per_step),
            "prompts per step; generations = directions x prompts", at_least(1));
  b.real("es.sigma", EGGROLL_FIELD(es.sigma), "noise scale", greater_than(0));
  b.integer("es.rank", EGGROLL_FIELD(es.rank), "rank r of the perturbations", at_least(1));
  b.integer("es.noise_reuse", EGGROLL_FIELD(es.noise_reuse),
            "steps sharing one noise draw (0 = same noise forever)", at_least(0));
  b.enumeration("es.noise", EGGROLL_FIELD(es.noise), {"gaussian", "rademacher"},
                "factor distribution");
  b.enumeration("es.noise_cache", EGGROLL_FIELD(es.noise_cache), {"regenerate", "keep"},
                "keep a step's noise factors in memory, or regenerate them when needed");
  b.boolean("es.freeze_nonlora", EGGROLL_FIELD(es.freeze_nonlora),
            "vectors (norms, x_*, w0, ...) are neither perturbed nor updated");
  b.list("es.exclude", EGGROLL_FIELD(es.exclude), "parameter name globs never trained");
  b.list("es.include", EGGROLL_FIELD(es.include), "parameter name globs trained (minus es.exclude)");
  b.enumeration("es.shaping", EGGROLL_FIELD(es.shaping), {"zscore", "rank", "raw"},
                "fitness shaping across directions");

  // optim
  b.enumeration("optim.name", EGGROLL_FIELD(optim.name), {"sgd", "adam", "adamw"}, "optimizer");
  b.real("optim.lr", EGGROLL_FIELD(optim.lr), "learning rate", greater_than(0));
  b.real("optim.beta1", EGGROLL_FIELD(optim.beta1), "Adam beta1", at_least(0), less_than(1));
  b.real("optim.beta2", EGGROLL_FIELD(optim.beta2), "Adam beta2", at_least(0), less_than(1));
  b.real("optim.eps", EGGROLL_FIELD(optim.eps), "Adam epsilon", greater_than(0));
  b.real("optim.weight_decay", EGGROLL_FIELD(optim.weight_decay), "weight decay", at_least(0));
  b.enumeration("optim.lr_schedule", EGGROLL_FIELD(optim.lr_schedule),
                {"constant", "linear", "multiplicative"}, "learning-rate schedule");
  b.real("optim.lr_decay", EGGROLL_FIELD(optim.lr_decay),
         "multiplicative: factor per step; linear: final fraction of optim.lr", at_least(0));
  b.enumeration("optim.sigma_schedule", EGGROLL_FIELD(optim.sigma_schedule),
                {"constant", "linear", "multiplicative"}, "es.sigma schedule");
  b.real("optim.sigma_decay", EGGROLL_FIELD(optim.sigma_decay),
         "multiplicative: factor per step; linear: final fraction of es.sigma", greater_than(0));
  b.real("optim.clip_update_norm", EGGROLL_FIELD(optim.clip_update_norm),
         "clip each step's update to this global norm (0 = off)", at_least(0));

  // task
  b.enumeration("task.name", EGGROLL_FIELD(task.name),
                {"countdown", "gsm8k", "math", "external", "sft", "digits", "fastzero", "reptok", "uniquetok"}, "task",
                /*required=*/true);
  b.string("task.train_path", EGGROLL_FIELD(task.train_path), "training data file (\"\" = built-in)");
  b.string("task.val_path", EGGROLL_FIELD(task.val_path), "validation data file (\"\" = none)");
  b.integer("task.val_size", EGGROLL_FIELD(task.val_size), "validation examples", at_least(0));
  b.enumeration("task.template", EGGROLL_FIELD(task.template_), {"chat", "chat_think", "raw"},
                "prompt template");
  b.integer("task.thinking_length", EGGROLL_FIELD(task.thinking_length),
            "new tokens allowed for thinking", at_least(0));
  b.integer("task.answer_length", EGGROLL_FIELD(task.answer_length),
            "new tokens allowed for the answer", at_least(1));
  b.string("task.stop", EGGROLL_FIELD(task.stop), "generation stops after this text (\"\" = none)");
  b.uint64("task.seed", EGGROLL_FIELD(task.seed), "data order / generated-problem seed");
  b.string("task.answer_tag", EGGROLL_FIELD(task.answer_tag),
           "math: answer tag searched when there is no \\boxed{} (\"\" = none)");
  b.real("task.format_reward", EGGROLL_FIELD(task.format_reward),
         "math: reward of an answer that was found but is wrong", at_least(0), at_most(1));
  b.string("task.command", EGGROLL_FIELD(task.command),
           "external: reward process, started once per rank with /bin/sh -c (JSON lines on stdin/stdout)");
  b.real("task.timeout_s", EGGROLL_FIELD(task.timeout_s), "external: seconds to wait for each answer line",
         greater_than(0));
  b.string("task.answer_prefix", EGGROLL_FIELD(task.answer_prefix),
           "math: text appended to each prompt that the completion continues (e.g. \\boxed{); \"\" = none");
  b.integer("task.chunk_tokens", EGGROLL_FIELD(task.chunk_tokens),
            "sft: target tokens fed per pass, the recurrent state carried to the next (0 = whole target)",
            at_least(0));

  // generation
  b.real("generation.temperature", EGGROLL_FIELD(generation.temperature),
         "sampling temperature (0 = greedy)", at_least(0));
  b.integer("generation.top_k", EGGROLL_FIELD(generation.top_k), "top-k sampling (0 = off)",
            at_least(0));
  b.real("generation.top_p", EGGROLL_FIELD(generation.top_p), "nucleus sampling (1 = off)",
         greater_than(0), at_most(1));

  // dist
  b.enumeration("dist.backend", EGGROLL_FIELD(dist.backend), {"auto", "single", "mpi", "tcp", "nccl"},
                "multi-process backend (tcp: no MPI, rank 0 listens on rendezvous_path host:port)");
  b.enumeration("dist.update_mode", EGGROLL_FIELD(dist.update_mode), {"allreduce", "replicated"},
                "all-reduce the update, or recompute it on every rank from gathered fitness");
  b.enumeration("dist.rendezvous", EGGROLL_FIELD(dist.rendezvous), {"mpi", "tcp", "file"},
                "how ranks find each other");
  b.string("dist.rendezvous_path", EGGROLL_FIELD(dist.rendezvous_path),
           "tcp: host:port; file: shared file path");
  b.real("dist.timeout_s", EGGROLL_FIELD(dist.timeout_s), "collective / rendezvous timeout, seconds",
         greater_than(0));
  return t;
}

#undef EGGROLL_FIELD

const Table& table() {
  static const Table t = make_table();
  return t;
}

// Values as the YAML writer formats them (strings quoted and escaped: one line).
std::string show(double v) {
  config::Entry e;
  e.type = config::Type::Double;
  return config::format_value(e, config::Value{v});
}

std::string show(const std::string& s) {
  config::Entry e;
  e.type = config::Type::String;
  return config::format_value(e, config::Value{s});
}

void fail(const std::string& msg) { throw InputError(msg); }

bool valid_run_name(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 200) return false;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

void check_patterns(const std::string& key, const std::vector<std::string>& pats) {
  for (size_t i = 0; i < pats.size(); ++i) {
    if (pats[i].empty()) fail(key + ": element " + std::to_string(i + 1) + " is an empty pattern");
  }
}

void check_schedule(const std::string& sched_key, const std::string& sched, const std::string& decay_key,
                    double decay) {
  if (sched == "constant" && decay != 1.0) {
    fail(decay_key + " = " + show(decay) + " has no effect with " + sched_key +
         " = constant (set " + sched_key + " to linear or multiplicative, or " + decay_key + " to 1)");
  }
  if (sched == "multiplicative" && !(decay > 0)) {
    fail(decay_key + " must be > 0 with " + sched_key + " = multiplicative, got " + show(decay));
  }
}

}  // namespace

const config::Schema& train_config_schema() { return table().schema; }

void validate(const TrainConfig& c) {
  // Per-key ranges and choices (also catches values set in code).
  (void)to_config(c);
}

namespace {

void validate_cross(const TrainConfig& c) {
  if (!valid_run_name(c.run.name)) {
    fail("run.name: " + show(c.run.name) +
         " is not a valid run name (non-empty, no '/', '\\' or control characters, not '.' or '..')");
  }
  if (c.run.dir.empty()) fail("run.dir: must not be empty");

  bool has_path = !c.model.path.empty(), has_preset = !c.model.init_preset.empty();
  if (has_path == has_preset) {
    fail(std::string("exactly one of model.path and model.init_preset must be set (") +
         (has_path ? "both are" : "neither is") + ")");
  }
  if (c.model.vocab.empty()) fail("model.vocab: must be \"byte\" or the path of a World vocab file");

  if (c.es.directions % 2 != 0) {
    fail("es.directions must be even (antithetic pairs), got " + std::to_string(c.es.directions));
  }
  if (static_cast<int64_t>(c.es.directions) * c.es.prompts_per_step > (int64_t{1} << 30)) {
    fail("es.directions x es.prompts_per_step = " +
         std::to_string(static_cast<int64_t>(c.es.directions) * c.es.prompts_per_step) +
         " generations per step is too many (max 2^30)");
  }
  if (c.es.include.empty()) fail("es.include is empty: no parameter would be trained");
  check_patterns("es.include", c.es.include);
  check_patterns("es.exclude", c.es.exclude);

  check_schedule("optim.lr_schedule", c.optim.lr_schedule, "optim.lr_decay", c.optim.lr_decay);
  check_schedule("optim.sigma_schedule", c.optim.sigma_schedule, "optim.sigma_decay",
                 c.optim.sigma_decay);

  if (c.task.name == "gsm8k" && c.task.train_path.empty()) {
    fail("task.name = gsm8k requires task.train_path (a GSM8K jsonl file)");
  }
  if (c.task.name == "external" && (c.task.train_path.empty() || c.task.command.empty())) {
    fail("task.name = external requires task.train_path (a jsonl file with \"prompt\") and task.command");
  }
  if (c.task.name == "sft" && c.task.train_path.empty()) {
    fail("task.name = sft requires task.train_path (a jsonl file with \"target\" or \"text\")");
  }
  if (!c.task.answer_prefix.empty() && c.task.name != "math") {
    fail("task.answer_prefix applies to task.name = math only");
  }
  if (!c.task.answer_prefix.empty() && c.task.template_ == "chat_think") {
    fail("task.answer_prefix: not with task.template = chat_think (the answer is searched after </think>)");
  }
  if (c.task.chunk_tokens > 0 && c.task.name != "sft") {
    fail("task.chunk_tokens = " + std::to_string(c.task.chunk_tokens) + " applies to task.name = sft only (set it to 0)");
  }
  if (c.task.name == "math" && c.task.train_path.empty()) {
    fail("task.name = math requires task.train_path (a jsonl file with problem and answer)");
  }
  if (c.task.template_ == "chat_think" && c.task.thinking_length == 0) {
    fail("task.template = chat_think requires task.thinking_length >= 1");
  }
  if (static_cast<int64_t>(c.task.thinking_length) + c.task.answer_length > INT_MAX) {
    fail("task.thinking_length + task.answer_length is too large");
  }
  if (c.run.eval_every > 0 && c.task.val_size == 0) {
    fail("run.eval_every = " + std::to_string(c.run.eval_every) +
         " requires task.val_size >= 1 (or set run.eval_every to 0)");
  }

  if (c.generation.temperature == 0 && (c.generation.top_k != 0 || c.generation.top_p != 1.0)) {
    fail("generation.top_k / generation.top_p have no effect with generation.temperature = 0 "
         "(greedy); set a temperature > 0 or leave them at 0 / 1");
  }

  if ((c.dist.rendezvous == "tcp" || c.dist.rendezvous == "file") && c.dist.rendezvous_path.empty()) {
    fail("dist.rendezvous = " + c.dist.rendezvous + " requires dist.rendezvous_path (" +
         (c.dist.rendezvous == "tcp" ? "host:port" : "a shared file path") + ")");
  }
}

}  // namespace

config::Config to_config(const TrainConfig& cfg) {
  Config c(table().schema);
  for (const auto& b : table().bindings) b.store(cfg, c);
  c.require_complete();
  validate_cross(cfg);
  return c;
}

TrainConfig from_config(const config::Config& c) {
  if (c.schema().entries().size() != table().schema.entries().size()) {
    throw std::logic_error("from_config: config was not built from train_config_schema()");
  }
  c.require_complete();
  TrainConfig tc;
  for (const auto& b : table().bindings) b.load(c, tc);
  validate_cross(tc);
  return tc;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c = config::load(table().schema, path, overrides);
  if (c.get_string("run.name").empty()) {
    if (path.empty()) fail("run.name: required when no config file is given");
    std::string stem = std::filesystem::path(path).stem().string();
    if (!valid_run_name(stem)) {
      fail("run.name: the config file's name " + show(stem) +
           " is not a valid run name; set run.name");
    }
    c.set_string("run.name", stem);
  }
  return from_config(c);
}

std::string to_yaml(const TrainConfig& cfg) {
  return "# eggroll train config, fully resolved (every key, defaults included)\n" +
         to_config(cfg).to_yaml(true);
}

std::string fingerprint(const TrainConfig& cfg) { return to_config(cfg).fingerprint_hex(); }

const std::vector<std::string>& resume_mutable_keys() {
  static const std::vector<std::string> keys = {
      "run.steps",          "run.threads",         "run.device",      "run.log_every",   "run.eval_every",
      "run.samples_per_step", "run.checkpoint_every", "run.keep_checkpoints", "dist.timeout_s",
      "dist.backend",       "dist.rendezvous",    "dist.rendezvous_path"};
  return keys;
}

std::vector<config::KeyDiff> diff(const TrainConfig& a, const TrainConfig& b,
                                  const std::vector<std::string>& ignore) {
  return config::diff(to_config(a), to_config(b), ignore);
}

DType stored_weight_dtype(const TrainConfig& cfg) {
  DType dt = DType::F32;
  if (!cfg.model.path.empty()) {
    try {
      read_checkpoint_config(cfg.model.path, &dt);
    } catch (const InputError& e) {
      throw InputError(std::string("model.path: ") + e.what());
    }
  } else if (!parse_dtype(cfg.model.init_dtype, dt)) {
    throw InputError("model.init_dtype: unknown dtype '" + cfg.model.init_dtype + "'");
  }
  return dt;
}

std::string matrix_dtype_for(const std::string& key, DType stored, bool bf16_products) {
  if (key != "auto") return key;
  return stored != DType::F32 && bf16_products ? "bf16" : "f32";
}

TrainConfig resolve_matrix_dtype(const TrainConfig& cfg) {
  TrainConfig r = cfg;
  if (r.model.matrix_dtype != "auto") return r;
  r.model.matrix_dtype =
      matrix_dtype_for("auto", stored_weight_dtype(cfg), cfg.run.device == "cuda" || cpu_has_bf16_dot());
  return r;
}

void require_resumable(const TrainConfig& saved_cfg, const std::string& saved_path, const TrainConfig& now_cfg) {
  // model.matrix_dtype: compare what both mean. A run written before the key existed ("auto"
  // in its config.yaml) multiplied in bf16 only on cuda.
  TrainConfig saved = saved_cfg, now = now_cfg;
  if (saved.model.matrix_dtype != now.model.matrix_dtype) {
    if (now.model.matrix_dtype == "auto") now = resolve_matrix_dtype(now);
    if (saved.model.matrix_dtype == "auto")
      saved.model.matrix_dtype = matrix_dtype_for("auto", stored_weight_dtype(saved), saved.run.device == "cuda");
  }
  auto d = diff(saved, now, resume_mutable_keys());
  if (d.empty()) return;
  std::string msg = "config differs from the run's config.yaml (" + saved_path + ") at key '" +
                    d[0].key + "': " + d[0].b + " (now) vs " + d[0].a + " (run)";
  if (d.size() > 1) {
    msg += "; also ";
    for (size_t i = 1; i < d.size() && i <= 5; ++i) msg += (i > 1 ? ", " : "") + d[i].key;
    if (d.size() > 6) msg += ", ...";
  }
  throw InputError(msg);
}

}  // namespace eggroll
