#pragma once
// `eggroll train`: the ES loop around the population forward, with a run directory
// (app/run_dir.h), metrics, samples, atomic checkpoints and bit-exact resume.
// A checkpoint is written into a temporary directory and renamed into place, then `latest`
// is replaced (temp + rename): a run killed at any moment resumes from the last complete one.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "app/run_dir.h"
#include "app/train_config.h"

namespace eggroll {

struct TrainResult {
  int steps_done = 0;
  double last_reward_mean = 0;
  std::string run_dir;
};

struct TrainHooks {
  bool progress = true;       // live progress line on stderr when it is a terminal
  int stop_after_steps = -1;  // testing: return after this many steps of this invocation
};

TrainResult train(const TrainConfig& cfg, const TrainHooks& hooks = {});

struct EvalResult {
  double score = 0;  // mean reward over the validation split, greedy
  size_t examples = 0;
  std::string checkpoint;
};
// checkpoint: a checkpoint directory or weights file; "" = the run's latest, else the initial model.
EvalResult evaluate(const TrainConfig& cfg, const std::string& checkpoint);

// The task options of a config's task section: what training builds its task from (and
// `eggroll score --config` too, so that both score with the same rules).
struct TaskOptions;
TaskOptions task_options(const TrainConfig& cfg);

}  // namespace eggroll
