#pragma once
// Tasks: where training and validation prompts come from, and how rollouts are scored.
//
//   countdown  generated (seeded, always solvable) or loaded from JSONL ("nums", "target");
//              reward 1.0 / 0.1 / 0 (see tasks/countdown.h)
//   gsm8k      JSONL ("question", "answer" with the solution after "####"); reward 1 / 0
//   math       JSONL ("problem"/"question", "answer"/"solution"); \boxed{} answers compared
//              after normalisation, numerically where possible; reward 1 / format_reward / 0
//              (see tasks/math.h for every rule); answer_prefix ends the prompt and is put back
//              before the completion when it is scored
//   sft        JSONL ("prompt" optional, "target" or "text"); fitness is the mean per-token
//              log-likelihood of the target under the (perturbed) model, teacher-forced
//   external   JSONL ("prompt", any other fields); the reward comes from a long-lived process
//              of the user's (task.command) speaking JSON lines (see tasks/external.h)
//   digits, fastzero, reptok, uniquetok   toy tasks for tiny models (llm_bandits.py)
//
// Prompts are full text (chat template applied). Templates:
//   "chat"        "User: {question}\n\nAssistant:"
//   "chat_think"  "User: {question}\n\nAssistant: <think"
//   "raw"         "{question}"
// An empty template name selects the task's default: countdown "chat", gsm8k "chat_think",
// math "chat_think", sft, external and toy tasks "raw".
//
// Conventions for reward(): completion_text is the decoded completion, without the prompt and
// without the end-of-document token; completion_tokens are the generated token ids and INCLUDE
// the end-of-document token 0 when the model emitted it (fastzero needs to see it).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tasks/jsonl.h"  // read_jsonl

namespace eggroll {

struct Example {
  std::string prompt;   // full text fed to the model (template applied)
  nlohmann::json meta;  // task data the reward needs, plus "index" and "split" for logging
  // The example's data record: the fields of its JSONL line that the task reads ("nums" and
  // "target", "question" and "answer", ...; empty for toy tasks). Training writes them into
  // samples.jsonl, so `eggroll score` can rescore those rows; example_from_record(record)
  // gives back an example with the same reward.
  nlohmann::json record = nlohmann::json::object();
};

// One rollout to score: the example, the decoded completion and the generated tokens.
struct Completion {
  const Example* example = nullptr;
  std::string_view text;
  std::span<const int32_t> tokens;
};

// All methods are const and safe to call from several threads (the external task serialises
// calls to its process internally).
class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // Deterministic in index (the data position), so a resumed run sees the same prompts.
  // File-backed tasks cycle through the file in order: example index % file size.
  virtual Example train_example(uint64_t index) const = 0;
  virtual size_t val_size() const = 0;
  virtual Example val_example(size_t i) const = 0;  // std::out_of_range when i >= val_size()
  virtual double reward(const Example& ex, std::string_view completion_text,
                        std::span<const int32_t> completion_tokens) const = 0;
  // The example of one data record (a JSONL object with the task's fields), built as the
  // task's file loader builds it: what `eggroll score` scores. Fields the task does not read
  // are ignored. InputError "<where>: ..." naming a missing or malformed field.
  virtual Example example_from_record(const nlohmann::json& record, const std::string& where) const = 0;
  // The rewards of a batch, in order: reward() of each (the external task sends the whole batch
  // to its process before reading the answers). Training, evaluation and `eggroll score` call this.
  // Teacher-forced tasks (sft) are not scored on completions: training feeds prompt +
  // reference(example) and uses the mean log-likelihood of the reference's tokens as fitness
  // (reward() then throws InputError).
  virtual bool teacher_forced() const { return false; }
  virtual std::string reference(const Example&) const { return {}; }
  virtual std::vector<double> rewards(std::span<const Completion> batch) const {
    std::vector<double> out;
    out.reserve(batch.size());
    for (const Completion& c : batch) out.push_back(reward(*c.example, c.text, c.tokens));
    return out;
  }
};

struct TaskOptions {
  std::string name;                // countdown, gsm8k, math, digits, fastzero, reptok, uniquetok
  std::string train_path;          // JSONL; required for gsm8k and math, optional for countdown
  // true: gsm8k and math may be built without train_path, to score records only
  // (example_from_record; train_example then throws std::logic_error)
  bool records_only = false;
  std::string val_path;            // JSONL; optional
  uint64_t seed = 0;               // generated problems (countdown)
  // Validation examples: a file-backed split uses the first val_size examples of val_path
  // (0 = all of them); a generated split (countdown without train_path, toy tasks) has exactly
  // val_size examples. Countdown from train_path without val_path, and gsm8k without val_path,
  // have no validation split (val_size() == 0).
  size_t val_size = 128;
  std::string template_name;       // "chat", "chat_think", "raw"; "" = task default
  // countdown generator
  int min_numbers = 3, max_numbers = 4;
  int64_t min_value = 1, max_value = 100;
  int64_t min_target = 100, max_target = 999;
  // toy tasks: the prompt text (default empty: generation starts right after token 0, as in
  // the reference, which feeds only the end-of-document token)
  std::string toy_prompt;
  // math: the fallback answer tag (<answer_tag>...</answer_tag>; "" = none) and the reward of
  // an answer that was found but is wrong
  std::string answer_tag = "answer";
  double format_reward = 0.0;
  // math: text appended to every prompt (after the template) that the completion continues, and
  // put back before the completion when it is scored (e.g. "\\boxed{": the model writes the
  // answer straight into the box); "" = none. Not with chat_think (the answer follows </think>).
  std::string answer_prefix;
  // external: the reward process's shell command and the wait for each answer line
  std::string command;
  double timeout_s = 60.0;
};

// Builds a task. InputError "task.<key>: ..." on bad options, "<file>:<line>: ..." on a bad
// data line, "<file>: ..." when a file cannot be read.
std::unique_ptr<Task> make_task(const TaskOptions& opts);

// Applies a chat template (see above) to a question. InputError on an unknown template.
std::string apply_template(std::string_view template_name, std::string_view question);

namespace gsm8k {
// The reference's extract_predicted_answer: the last match of (-?[$0-9.,]{2,})|(-?[0-9]+) in
// text, with ',' and '$' removed and one trailing '.' removed; nullopt when nothing matches.
std::optional<std::string> extract_predicted_answer(std::string_view text);
// The gold answer: the text after the last "####" (the whole text when there is none),
// trimmed, with ',' removed.
std::string gold_answer(std::string_view answer);
// 0 unless "</think>" occurs; then 1 when extract_predicted_answer(text after the FIRST
// "</think>", as the reference's str.find) equals gold, else 0.
double reward(std::string_view completion, std::string_view gold);
}  // namespace gsm8k

namespace toy {
// The reference's llm_bandits.py toy rewards, on the generated tokens:
double digits(std::string_view text);                  // number of ASCII digit characters
double fastzero(std::span<const int32_t> tokens);      // -(position of the first 0), or
                                                       // -2 * tokens.size() if none
double reptok(std::span<const int32_t> tokens);        // largest count of one token id
double uniquetok(std::span<const int32_t> tokens);     // number of distinct token ids
}  // namespace toy

}  // namespace eggroll
