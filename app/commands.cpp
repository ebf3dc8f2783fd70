#include "app/commands.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace eggroll {

void register_model_commands(CLI::App& app);
void register_bench_commands(CLI::App& app);
void register_train_commands(CLI::App& app);
void register_plan_commands(CLI::App& app);
void register_sweep_commands(CLI::App& app);
void register_score_commands(CLI::App& app);

Model load_model(const std::string& path, Model::MatrixBits matrices, bool show) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto last = t0;
  const bool tty = ::isatty(2);
  bool shown = false;
  Model m = Model::load(path, matrices, [&](uint64_t done, uint64_t total) {
    if (!show || total < kLargeCheckpointBytes) return;
    const auto now = clock::now();
    if (!shown) fmt::print(stderr, "loading {} ({:.1f} GB)\n", path, double(total) / 1e9);
    shown = true;
    if (tty && (now - last > std::chrono::milliseconds(500) || done == total)) {
      fmt::print(stderr, "\r\033[K  {:.1f} / {:.1f} GB", double(done) / 1e9, double(total) / 1e9);
      last = now;
    }
  });
  if (shown)
    fmt::print(stderr, "{}loaded {} in {:.1f} s\n", tty ? "\r\033[K" : "", path,
               std::chrono::duration<double>(clock::now() - t0).count());
  return m;
}

void register_commands(CLI::App& app) {
  register_model_commands(app);
  register_bench_commands(app);
  register_train_commands(app);
  register_plan_commands(app);
  register_sweep_commands(app);
  register_score_commands(app);
}

}  // namespace eggroll
