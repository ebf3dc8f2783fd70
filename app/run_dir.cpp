#include "app/run_dir.h"

#include <filesystem>
#include <fmt/format.h>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace fs = std::filesystem;

namespace eggroll {

std::string run_directory(const TrainConfig& cfg) { return (fs::path(cfg.run.dir) / cfg.run.name).string(); }

std::string latest_checkpoint(const std::string& run_dir) {
  const fs::path p = fs::path(run_dir) / "checkpoints" / "latest";
  if (!fs::exists(p)) return "";
  std::string name = read_file(p.string(), "checkpoint pointer");
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
  const fs::path dir = fs::path(run_dir) / "checkpoints" / name;
  if (name.empty() || name.find('/') != std::string::npos || !fs::exists(dir / "state.json"))
    throw InputError(fmt::format("{}: points to '{}', which is not a complete checkpoint", p.string(), name));
  return dir.string();
}

void set_latest_checkpoint(const std::string& run_dir, const std::string& name) {
  write_file_atomic((fs::path(run_dir) / "checkpoints" / "latest").string(), name + "\n");
}

RunState read_run_state(const std::string& checkpoint_dir) {
  const std::string path = (fs::path(checkpoint_dir) / "state.json").string();
  const auto j = nlohmann::json::parse(read_file(path, "checkpoint state"), nullptr, false);
  auto field = [&](const char* key) {
    if (j.is_discarded() || !j.is_object() || !j.contains(key) || !j[key].is_number_unsigned())
      throw InputError(path + ": malformed checkpoint state");
    return j[key].get<uint64_t>();
  };
  const uint64_t step = field("step");
  if (step > uint64_t(std::numeric_limits<int>::max())) throw InputError(path + ": malformed checkpoint state");
  return {int(step), field("optimizer_steps")};
}

void write_run_state(const std::string& checkpoint_dir, const RunState& state) {
  const nlohmann::json j = {{"step", state.step}, {"optimizer_steps", state.optimizer_steps}, {"format", 1}};
  write_file_atomic((fs::path(checkpoint_dir) / "state.json").string(), j.dump(1) + "\n");
}

int completed_steps(const std::string& run_dir) {
  const std::string ck = latest_checkpoint(run_dir);
  return ck.empty() ? 0 : read_run_state(ck).step;
}

}  // namespace eggroll
