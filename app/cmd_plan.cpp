// Command: plan (device-memory plan of a training config; app/plan.h).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <iostream>

#include "core/config.h"
#include "core/error.h"
#include "app/commands.h"
#include "app/plan.h"
#include "app/train_config.h"

namespace eggroll {

void register_plan_commands(CLI::App& app) {
  auto* c = app.add_subcommand(
      "plan", "Device-memory plan of a run: plan [CONFIG.yaml] [key.path=value ...] (exit 2 when it does not fit)");
  auto args = std::make_shared<std::vector<std::string>>();
  auto gib = std::make_shared<double>(139.0);
  auto gpus = std::make_shared<int>(1);
  auto prompt = std::make_shared<int64_t>(256);
  auto preset = std::make_shared<std::string>();
  auto weights = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  c->add_option("args", *args, "config file, then dotted overrides (no file: the embedded quickstart)");
  c->add_option("--device-memory", *gib, "GiB of memory per device (default 139: an H200)");
  c->add_option("--gpus", *gpus, "devices the generations are split over (default 1)");
  c->add_option("--prompt-tokens", *prompt, "prompt length assumed per generation (default 256)");
  c->add_option("--preset", *preset, "plan for this model preset instead of model.path / model.init_preset");
  c->add_option("--weights", *weights, "device weight dtype: f32 | bf16 (default: the checkpoint's)");
  c->add_flag("--json", *json, "print the plan as one JSON object");
  c->callback([=] {
    std::vector<std::string> model;  // --preset: the model comes from the flag, no file needed
    if (!preset->empty()) model = {"model.path=", "model.init_preset=" + *preset};
    TrainConfig cfg = config_from_args(*args, model);
    PlanRequest req = plan_request(cfg);
    if (!weights->empty()) {
      DType d;
      if (!parse_dtype(*weights, d) || d == DType::F16)
        throw InputError(fmt::format("--weights: '{}' is not one of f32, bf16", *weights));
      req.weight_dtype = d;
    }
    require(*gib > 0, "--device-memory", "must be > 0");
    require(*gpus >= 1, "--gpus", "must be >= 1");
    require(*prompt >= 0, "--prompt-tokens", "must be >= 0");
    req.device_gib = *gib;
    req.gpus = *gpus;
    req.prompt_tokens = *prompt;
    Plan p = make_plan(req);
    if (*json) {
      (p.fits ? std::cout : std::cerr) << plan_json(p) << "\n";
    } else if (p.fits) {
      std::cout << format_plan(p);
    } else {
      std::cerr << format_plan(p);
    }
    if (!p.fits) {
      fmt::print(stderr, "eggroll: error: plan: {:.2f} GiB needed per device, {:.2f} GiB available\n",
                 double(p.total_bytes) / (1024.0 * 1024.0 * 1024.0), *gib);
      set_command_status(2);
    }
  });
}

}  // namespace eggroll
