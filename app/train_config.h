#pragma once
#include "core/dtype.h"
// The training run's configuration: `eggroll train CONFIG.yaml key.path=value ...`.
//
// TrainConfig holds plain fields grouped by YAML section; the defaults below are the schema's
// defaults (one source of truth: the schema reads them from a default-constructed TrainConfig).
// Enumerated settings are strings restricted to the listed choices; map them to the modules'
// own enums with their parsers (parse_noise_dist, parse_fitness_shaping, parse_dtype, ...).
//
// Loading is strict (core/config.h): unknown keys, wrong types, out-of-range values, missing
// required keys and inconsistent combinations are InputErrors naming the key path.
// to_yaml() writes every key (defaults included); loading that text gives back an identical
// TrainConfig, which is what a run directory's `config.yaml` is for.
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace eggroll {

struct TrainConfig {
  struct Run {
    std::string name;            // "" in a file = the config file's stem; runs/<name>/
    std::string dir = "runs";    // parent directory of run directories
    uint64_t seed = 0;           // noise / run seed
    int steps = 10;              // ES steps, >= 1
    int checkpoint_every = 5;    // >= 0; 0 = only at the end
    int keep_checkpoints = 3;    // >= 1; older ones are deleted
    int samples_per_step = 4;    // >= 0; generations logged to samples.jsonl per step
    int eval_every = 0;          // >= 0; 0 = never
    int log_every = 1;           // >= 1; console progress line every N steps (metrics.jsonl: every step)
    int threads = 0;             // >= 0; 0 = all cores
    std::string device = "cpu";  // cpu | cuda (es/population_engine.h on that backend)
    bool operator==(const Run&) const = default;
  } run;

  struct Model {
    std::string path;            // checkpoint to fine-tune ("" = none)
    std::string init_preset;     // "", tiny, 0.1b, 0.4b, 1.5b, 2.9b, 7.2b, 13.3b (random init)
    uint64_t init_seed = 0;      // seed of the random init
    std::string init_dtype = "f32";  // f32 | bf16 | f16 (random init)
    // auto | f32 | bf16: the dtype the step multiplies the matrices in (bf16: fp32 masters for
    // the trained ones). auto: bf16 when the model is stored in a 16-bit type and the device
    // computes bf16 products (CUDA; a CPU with AVX512-BF16), else f32. The run's config.yaml
    // records the resolved value.
    std::string matrix_dtype = "auto";
    std::string vocab = "byte";  // World vocab file path, or "byte" (V = 256)
    bool operator==(const Model&) const = default;
  } model;

  struct ES {
    int directions = 32;         // population N (>= 2, even: antithetic pairs)
    int prompts_per_step = 1;    // P; generations per step = directions * prompts_per_step
    double sigma = 1e-3;         // > 0
    int rank = 1;                // r >= 1
    int noise_reuse = 1;         // >= 0; 0 = the same noise forever
    std::string noise = "gaussian";      // gaussian | rademacher
    std::string noise_cache = "keep";    // regenerate | keep
    bool freeze_nonlora = true;          // vectors are neither perturbed nor updated
    std::vector<std::string> exclude = {"emb.weight", "head.weight"};  // glob patterns
    std::vector<std::string> include = {"*"};                          // glob patterns
    std::string shaping = "zscore";      // zscore | rank | raw
    bool operator==(const ES&) const = default;
  } es;

  struct Optim {
    std::string name = "sgd";            // sgd | adam | adamw
    double lr = 0.125;                   // > 0
    double beta1 = 0.9;                  // [0, 1)
    double beta2 = 0.999;                // [0, 1)
    double eps = 1e-8;                   // > 0
    double weight_decay = 0.0;           // >= 0
    std::string lr_schedule = "constant";     // constant | linear | multiplicative
    double lr_decay = 1.0;               // multiplicative: factor per step; linear: final fraction
    std::string sigma_schedule = "constant";  // constant | linear | multiplicative
    double sigma_decay = 1.0;            // as lr_decay, for es.sigma (> 0)
    double clip_update_norm = 0.0;       // >= 0; 0 = off
    bool operator==(const Optim&) const = default;
  } optim;

  struct Task {
    std::string name;                    // countdown | gsm8k | math | external | sft | digits | fastzero | reptok | uniquetok (required)
    std::string train_path;              // dataset file ("" = built-in / generated)
    std::string val_path;                // validation file ("" = none / generated)
    int val_size = 16;                   // >= 0
    std::string template_ = "chat";      // key "template": chat | chat_think | raw
    int thinking_length = 0;             // >= 0; new tokens for thinking
    int answer_length = 32;              // >= 1; new tokens for the answer
    std::string stop = "\n\n";           // stop string ("" = none)
    uint64_t seed = 0;                   // data order / generation seed
    std::string answer_tag = "answer";   // math: fallback <answer_tag>...</answer_tag> ("" = none)
    double format_reward = 0.0;          // math: [0, 1]; reward of a found but wrong answer
    std::string command;                 // external: the reward process (/bin/sh -c), one per rank
    double timeout_s = 60.0;             // external: > 0; wait for each answer line
    std::string answer_prefix;           // math: appended to the prompt; the completion continues it
    int chunk_tokens = 0;                // sft: >= 0; target tokens per pass, state carried (0 = whole target)
    bool operator==(const Task&) const = default;
  } task;

  struct Generation {
    double temperature = 0.0;            // >= 0; 0 = greedy
    int top_k = 0;                       // >= 0; 0 = off
    double top_p = 1.0;                  // (0, 1]; 1 = off
    bool operator==(const Generation&) const = default;
  } generation;

  struct Dist {
    std::string backend = "auto";        // auto | single | mpi | nccl
    std::string update_mode = "allreduce";  // allreduce | replicated
    std::string rendezvous = "mpi";      // mpi | tcp | file
    std::string rendezvous_path;         // tcp: "host:port"; file: shared file path
    double timeout_s = 300.0;            // > 0
    bool operator==(const Dist&) const = default;
  } dist;

  bool operator==(const TrainConfig&) const = default;
};

// The schema of every key above, in the order to_yaml writes them.
const config::Schema& train_config_schema();

// Loads `path` ("" = no file) with `overrides` ("key.path=value"), fills run.name from the
// file's stem when it is "", and validates (per key and across keys). InputError on any problem.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Cross-key checks (each message names the keys); also run by load_train_config / to_config.
void validate(const TrainConfig& cfg);

// TrainConfig <-> generic resolved config. Both validate (InputError).
config::Config to_config(const TrainConfig& cfg);
TrainConfig from_config(const config::Config& c);

// The fully resolved config as YAML (header comment, every key, doc comments); written as
// runs/<name>/config.yaml. load_train_config of this text returns an identical TrainConfig.
std::string to_yaml(const TrainConfig& cfg);

// FNV-1a 64 of the canonical YAML, 16 hex digits.
std::string fingerprint(const TrainConfig& cfg);

// Keys that may change when a run is resumed (schedule length, logging, threads, rendezvous):
// run.steps, run.threads, run.device, run.log_every, run.eval_every, run.samples_per_step,
// run.checkpoint_every, run.keep_checkpoints, dist.timeout_s, dist.rendezvous,
// dist.rendezvous_path.
const std::vector<std::string>& resume_mutable_keys();

// Differing keys (schema order); `ignore` as config::diff.
std::vector<config::KeyDiff> diff(const TrainConfig& a, const TrainConfig& b,
                                  const std::vector<std::string>& ignore = {});

// For resume: throws InputError "config differs from the run's config.yaml (<saved_path>) at
// key 'es.sigma': 0.002 (now) vs 0.001 (run)" unless `now` equals `saved` on every key outside
// resume_mutable_keys().
void require_resumable(const TrainConfig& saved, const std::string& saved_path, const TrainConfig& now);

// The dtype the model is stored in: model.path's tensors (read from the file's header), or
// model.init_dtype for a random init.
DType stored_weight_dtype(const TrainConfig& cfg);
// What a model.matrix_dtype value ("auto", "f32", "bf16") means for a model stored in `stored`
// on a device that has bf16 products or not: "f32" or "bf16" (`eggroll generate` uses it too).
std::string matrix_dtype_for(const std::string& key, DType stored, bool bf16_products);
// cfg with model.matrix_dtype "auto" replaced by what it means on run.device: bf16 when the model
// is stored in bf16/f16 and the device computes bf16 products (cuda; a CPU with AVX512-BF16),
// else f32. The trainer records the result in the run's config.yaml.
TrainConfig resolve_matrix_dtype(const TrainConfig& cfg);

}  // namespace eggroll
