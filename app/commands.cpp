#include "app/commands.h"

#include <CLI/CLI.hpp>

namespace eggroll {

void register_model_commands(CLI::App& app);
void register_bench_commands(CLI::App& app);
void register_train_commands(CLI::App& app);
void register_plan_commands(CLI::App& app);
void register_sweep_commands(CLI::App& app);
void register_score_commands(CLI::App& app);

void register_commands(CLI::App& app) {
  register_model_commands(app);
  register_bench_commands(app);
  register_train_commands(app);
  register_plan_commands(app);
  register_sweep_commands(app);
  register_score_commands(app);
}

}  // namespace eggroll
