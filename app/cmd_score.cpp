// Command: score (rewards of given completions, no model).
//
//   eggroll score --task NAME [--template T] [--answer-tag TAG] [--format-reward F]
//                 [--vocab byte|PATH] --in FILE.jsonl [--out FILE]
//   eggroll score --config CONFIG.yaml [key.path=value ...] --in FILE.jsonl [--out FILE]
//
// Every input line is a JSON object with the task's data fields (countdown "nums"/"target",
// gsm8k "question"/"answer", math "problem"/"answer", external "prompt", none for the toy tasks) plus
// "completion" and optionally "tokens" (the generated ids; without them the completion is
// tokenized with --vocab, or the config's model.vocab). Each line is written back with
// "reward" set. The task is built and called as training builds and calls it
// (make_task(...)->example_from_record, ->reward), so the rewards are the ones training logs:
// a run's samples.jsonl rescored gives back its "reward" column.
#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/train_config.h"
#include "app/trainer.h"
#include "core/error.h"
#include "rwkv/tokenizer.h"
#include "tasks/tasks.h"

namespace eggroll {

namespace {

std::vector<int32_t> json_tokens(const nlohmann::json& t, const std::string& where) {
  require(t.is_array(), where, "\"tokens\" must be an array of token ids");
  std::vector<int32_t> out;
  out.reserve(t.size());
  for (const auto& v : t) {
    require(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
            where, "\"tokens\" must hold integers in [0, 2^31), got " + v.dump());
    out.push_back(int32_t(v.get<int64_t>()));
  }
  return out;
}

}  // namespace

void register_score_commands(CLI::App& app) {
  auto* c = app.add_subcommand(
      "score", "Rewards of completions without a model: score (--task NAME | --config CONFIG.yaml [key=value ...]) "
               "--in FILE.jsonl [--out FILE]");
  auto task = std::make_shared<std::string>();
  auto config = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  auto templ = std::make_shared<std::string>();
  auto tag = std::make_shared<std::string>("answer");
  auto format_reward = std::make_shared<double>(0.0);
  auto prefix = std::make_shared<std::string>();
  auto vocab = std::make_shared<std::string>();
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto command = std::make_shared<std::string>();
  auto timeout = std::make_shared<double>(60.0);
  c->add_option("--task", *task, "countdown | gsm8k | math | external | digits | fastzero | reptok | uniquetok");
  c->add_option("--command", *command, "external: the reward process (a shell command)");
  c->add_option("--timeout", *timeout, "external: seconds to wait for each answer line (default 60)");
  c->add_option("--config", *config, "take the task options (and model.vocab) from a training config");
  c->add_option("overrides", *overrides, "with --config: dotted overrides key.path=value");
  c->add_option("--template", *templ, "chat | chat_think | raw (default: the task's; math: chat_think "
                                      "requires </think>)");
  c->add_option("--answer-tag", *tag, "math: answer tag searched when there is no \\boxed{} (default answer)");
  c->add_option("--format-reward", *format_reward, "math: reward of a found but wrong answer (default 0)");
  c->add_option("--answer-prefix", *prefix, "math: the prompt's answer prefix, put back before each completion");
  c->add_option("--vocab", *vocab, "tokenizer for lines without \"tokens\": byte (default) or a World vocab file");
  c->add_option("--in", *in, "JSONL input: the task's fields plus \"completion\" (- = stdin)")->required();
  c->add_option("--out", *out, "output JSONL (default: stdout)");
  c->callback([=] {
    TaskOptions opts;
    std::string vocab_spec = *vocab;
    if (!config->empty()) {
      if (!task->empty() || !templ->empty() || *tag != "answer" || *format_reward != 0.0 || !command->empty() ||
          !prefix->empty())
        throw InputError("--config: give the task options in the config (or as key.path=value overrides), not as "
                         "--task/--template/--answer-tag/--format-reward/--answer-prefix");
      const TrainConfig cfg = load_train_config(*config, *overrides);
      opts = task_options(cfg);
      opts.train_path.clear();  // records come from --in; the data files need not exist here
      opts.val_path.clear();
      if (vocab_spec.empty()) vocab_spec = cfg.model.vocab;
    } else {
      if (task->empty()) throw InputError("--task: required (or --config CONFIG.yaml)");
      if (!overrides->empty())
        throw InputError(fmt::format("'{}': key.path=value overrides need --config", overrides->front()));
      if (!std::isfinite(*format_reward) || *format_reward < 0 || *format_reward > 1)
        throw InputError(fmt::format("--format-reward: {} is outside [0, 1]", *format_reward));
      opts.name = *task;
      opts.template_name = *templ;
      opts.answer_tag = *tag;
      opts.format_reward = *format_reward;
      opts.answer_prefix = *prefix;
      opts.command = *command;
      opts.timeout_s = *timeout;
    }
    opts.records_only = true;
    const auto t = make_task(opts);
    if (vocab_spec.empty()) vocab_spec = "byte";
    std::unique_ptr<Tokenizer> tok;  // loaded when a line has no "tokens"

    // every line first (a bad line stops before any reward), then one batch through rewards()
    std::vector<nlohmann::json> rows;
    std::vector<Example> examples;
    std::vector<std::string> completions;
    std::vector<std::vector<int32_t>> token_lists;
    read_jsonl(*in, [&](const nlohmann::json& line, const std::string& where) {
      const auto comp = line.find("completion");
      require(comp != line.end() && comp->is_string(), where, "missing string field \"completion\"");
      completions.push_back(comp->get<std::string>());
      if (const auto tk = line.find("tokens"); tk != line.end()) {
        token_lists.push_back(json_tokens(*tk, where));
      } else {
        if (!tok) tok = vocab_spec == "byte" ? make_byte_tokenizer() : load_world_tokenizer(vocab_spec);
        token_lists.push_back(tok->encode(completions.back()));
      }
      examples.push_back(t->example_from_record(line, where));
      rows.push_back(line);
    });
    std::vector<Completion> batch;
    for (size_t i = 0; i < rows.size(); i++) batch.push_back({&examples[i], completions[i], token_lists[i]});
    const std::vector<double> rewards = t->rewards(batch);
    std::string text;
    double total = 0;
    const size_t lines = rows.size();
    for (size_t i = 0; i < lines; i++) {
      rows[i]["reward"] = rewards[i];
      text += rows[i].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      total += rewards[i];
    }
    if (out->empty()) {
      std::cout << text << std::flush;
    } else {
      const std::string tmp = *out + ".tmp";
      {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw InputError(fmt::format("--out: cannot write {}", tmp));
        f << text;
        f.flush();
        if (!f) throw InputError(fmt::format("--out: write failed: {}", tmp));
      }
      std::error_code ec;
      std::filesystem::rename(tmp, *out, ec);
      if (ec) throw InputError(fmt::format("--out: cannot rename {} to {}: {}", tmp, *out, ec.message()));
    }
    fmt::print(stderr, "scored {} lines ({}), mean reward {:.6g}\n", lines, t->name(),
               lines ? total / double(lines) : 0.0);
  });
}

}  // namespace eggroll
