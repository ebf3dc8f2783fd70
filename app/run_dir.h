#pragma once
// A training run's directory, as the trainer writes it and the sweep, `eggroll eval` and the
// tests read it:
//
// <run.dir>/<run.name>/config.yaml          the resolved config (every key)
//                      metrics.jsonl        one line per step
//                      samples.jsonl        a few prompt/completion/reward rows per step
//                      checkpoints/step_N/  model.safetensors, optimizer.safetensors, state.json
//                      checkpoints/latest   the name of the newest complete checkpoint
#include <cstdint>
#include <string>

#include "app/train_config.h"

namespace eggroll {

std::string run_directory(const TrainConfig& cfg);

// The newest complete checkpoint's directory, "" when the run has none. InputError when
// `latest` names something that is not a complete checkpoint.
std::string latest_checkpoint(const std::string& run_dir);
// Points checkpoints/latest at checkpoints/<name> (temp file + rename).
void set_latest_checkpoint(const std::string& run_dir, const std::string& name);

// A checkpoint's state.json.
struct RunState {
  int step = 0;                  // completed steps
  uint64_t optimizer_steps = 0;  // the optimizer's step count
};
// InputError "<checkpoint_dir>/state.json: malformed checkpoint state" unless both fields are
// there as non-negative integers.
RunState read_run_state(const std::string& checkpoint_dir);
// Writes <checkpoint_dir>/state.json (temp file + rename).
void write_run_state(const std::string& checkpoint_dir, const RunState& state);

// Steps completed by the run in run_dir: the step of its latest checkpoint (0 when none).
int completed_steps(const std::string& run_dir);

}  // namespace eggroll
