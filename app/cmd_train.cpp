// Commands: train, eval.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "app/commands.h"
#include "app/embedded_configs.h"
#include "app/train_config.h"
#include "app/trainer.h"

namespace eggroll {

TrainConfig config_from_args(const std::vector<std::string>& args, const std::vector<std::string>& extra) {
  std::string path;
  std::vector<std::string> overrides;
  for (size_t i = 0; i < args.size(); i++) {
    if (i == 0 && args[i].find('=') == std::string::npos) path = args[i];
    else if (args[i].find('=') != std::string::npos) overrides.push_back(args[i]);
    else throw InputError(fmt::format("'{}': expected key.path=value (the config file comes first)", args[i]));
  }
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  if (!path.empty()) return load_train_config(path, overrides);
  return from_config(config::load_string(train_config_schema(), embedded_quickstart_yaml(),
                                         "embedded configs/quickstart.yaml", overrides));
}

void register_train_commands(CLI::App& app) {
  {
    auto* c = app.add_subcommand("train", "Fine-tune with EGGROLL: train [CONFIG.yaml] [key.path=value ...]");
    auto args = std::make_shared<std::vector<std::string>>();
    auto quiet = std::make_shared<bool>(false);
    c->add_option("args", *args, "config file, then dotted overrides (no file: the embedded quickstart)");
    c->add_flag("-q,--quiet", *quiet, "no progress line");
    c->callback([=] {
      TrainConfig cfg = config_from_args(*args);
      TrainHooks hooks;
      hooks.progress = !*quiet;
      TrainResult r = train(cfg, hooks);
      fmt::print(stderr, "done: {} steps, last mean reward {:.4f}, run directory {}\n", r.steps_done,
                 r.last_reward_mean, r.run_dir);
    });
  }
  {
    auto* c = app.add_subcommand("eval", "Greedy validation score: eval CONFIG.yaml [checkpoint=PATH] [key=value ...]");
    auto args = std::make_shared<std::vector<std::string>>();
    c->add_option("args", *args, "config file, then checkpoint=PATH and dotted overrides");
    c->callback([=] {
      std::vector<std::string> rest;
      std::string checkpoint;
      for (auto& a : *args) {
        if (a.rfind("checkpoint=", 0) == 0) checkpoint = a.substr(11);
        else rest.push_back(a);
      }
      TrainConfig cfg = config_from_args(rest);
      EvalResult r = evaluate(cfg, checkpoint);
      nlohmann::json j = {{"task", cfg.task.name}, {"score", r.score}, {"examples", r.examples}, {"checkpoint", r.checkpoint}};
      std::cout << j.dump() << "\n";
    });
  }
}

}  // namespace eggroll
