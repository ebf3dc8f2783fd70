#pragma once
// Registration of the command-line subcommands (each command's code lives in app/cmd_*.cpp).
#include <cstdint>
#include <string>
#include <vector>

#include "app/train_config.h"
#include "rwkv/model.h"

namespace CLI {
class App;
}

namespace eggroll {

void register_commands(CLI::App& app);
int command_status();           // exit status set by the command that ran
void set_command_status(int s);

// CONFIG.yaml [key.path=value ...] of train, eval and plan: the config file (optional, first),
// its overrides, then `extra` overrides; without a file, the embedded configs/quickstart.yaml.
// InputError for an argument after the first that is not key.path=value.
TrainConfig config_from_args(const std::vector<std::string>& args, const std::vector<std::string>& extra = {});

// From this size on, loading and packing a checkpoint say what they do on stderr.
constexpr uint64_t kLargeCheckpointBytes = uint64_t(1) << 30;

// Model::load of a checkpoint; with `show`, from kLargeCheckpointBytes of tensors on, the load's progress on
// stderr (a line redrawn on a terminal) and its time when done.
Model load_model(const std::string& path, Model::MatrixBits matrices = Model::MatrixBits::Widen, bool show = true);

// Shared parsing helpers for flags: throw InputError naming the flag.
std::vector<int32_t> parse_token_list(const std::string& flag, const std::string& text);
std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& text);

}  // namespace eggroll
