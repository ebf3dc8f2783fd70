#include "tasks/tasks.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tasks/countdown.h"
#include "tasks/external.h"
#include "tasks/math.h"

namespace eggroll {

// ---- shared helpers -------------------------------------------------------------------

std::string apply_template(std::string_view template_name, std::string_view question) {
  if (template_name == "chat") return "User: " + std::string(question) + "\n\nAssistant:";
  if (template_name == "chat_think")
    return "User: " + std::string(question) + "\n\nAssistant: <think";
  if (template_name == "raw") return std::string(question);
  throw InputError("task.template: unknown template '" + std::string(template_name) +
                   "' (expected chat, chat_think or raw)");
}

namespace {

std::string_view trim(std::string_view s) { return trim_blanks(s); }

size_t file_val_size(size_t requested, size_t available) {
  return requested == 0 ? available : std::min(requested, available);
}

void check_val_index(size_t i, size_t n) {
  if (i >= n)
    throw std::out_of_range("val_example: index " + std::to_string(i) + " >= val_size " +
                            std::to_string(n));
}

// A task whose examples are read from JSONL files (task.train_path, task.val_path): training
// example i is item i mod n of the training file, the validation split the first val_size items
// of the validation file. The task turns an item into an Example with make().
template <class Item>
class FileTask : public Task {
 public:
  Example train_example(uint64_t index) const override {
    if (train_.empty()) throw std::logic_error(name() + ": no training data (built to score records only)");
    return make(train_[static_cast<size_t>(index % train_.size())], index, "train");
  }
  size_t val_size() const override { return val_size_; }
  Example val_example(size_t i) const override {
    check_val_index(i, val_size_);
    return make(val_[i], i, "val");
  }

 protected:
  virtual Example make(const Item& item, uint64_t index, const char* split) const = 0;
  // Reads the files the options name with load(path) (no training file: scoring records only).
  template <class Load>
  void load_files(const TaskOptions& o, Load load) {
    if (!o.train_path.empty()) train_ = load(o.train_path);
    if (!o.val_path.empty()) {
      val_ = load(o.val_path);
      val_size_ = file_val_size(o.val_size, val_.size());
    }
  }

 private:
  std::vector<Item> train_, val_;
  size_t val_size_ = 0;
};

// ---- countdown ------------------------------------------------------------------------

class CountdownTask final : public Task {
 public:
  explicit CountdownTask(const TaskOptions& o)
      : template_(o.template_name.empty() ? "chat" : o.template_name), seed_(o.seed) {
    apply_template(template_, "");  // validates the template name
    gen_.min_numbers = o.min_numbers;
    gen_.max_numbers = o.max_numbers;
    gen_.min_value = o.min_value;
    gen_.max_value = o.max_value;
    gen_.min_target = o.min_target;
    gen_.max_target = o.max_target;
    if (!o.train_path.empty()) {
      train_ = countdown::load_jsonl(o.train_path);
    } else {
      countdown::validate_options(gen_);
      countdown::generate(gen_, seed_, false, 0);  // fails early on impossible ranges
    }
    if (!o.val_path.empty()) {
      val_ = countdown::load_jsonl(o.val_path);
      val_size_ = file_val_size(o.val_size, val_.size());
    } else if (o.train_path.empty()) {
      val_size_ = o.val_size;
      generated_val_ = true;
      if (val_size_ > 0) countdown::generate(gen_, seed_, true, 0);
    }
  }

  std::string name() const override { return "countdown"; }

  Example train_example(uint64_t index) const override {
    if (!train_.empty())
      return make(train_[static_cast<size_t>(index % train_.size())], index, "train");
    return make(countdown::generate(gen_, seed_, false, index), index, "train");
  }

  size_t val_size() const override { return val_size_; }

  Example val_example(size_t i) const override {
    check_val_index(i, val_size_);
    if (generated_val_) return make(countdown::generate(gen_, seed_, true, i), i, "val");
    return make(val_[i], i, "val");
  }

  double reward(const Example& ex, std::string_view text,
                std::span<const int32_t>) const override {
    const auto& m = ex.meta;
    const auto nums = m.at("nums").get<std::vector<int64_t>>();
    return countdown::reward(text, nums, m.at("target").get<int64_t>());
  }

  Example example_from_record(const nlohmann::json& record, const std::string& where) const override {
    return make(countdown::problem_from_json(record, where), 0, "record");
  }

 private:
  Example make(const countdown::Problem& p, uint64_t index, const char* split) const {
    Example ex;
    ex.prompt = apply_template(template_, countdown::question(p));
    ex.meta = {{"index", index}, {"split", split}, {"nums", p.nums}, {"target", p.target}};
    if (!p.solution.empty()) ex.meta["solution"] = p.solution;
    ex.record = {{"nums", p.nums}, {"target", p.target}};
    return ex;
  }

  std::string template_;
  uint64_t seed_;
  countdown::GeneratorOptions gen_;
  std::vector<countdown::Problem> train_, val_;
  size_t val_size_ = 0;
  bool generated_val_ = false;
};

// ---- gsm8k ----------------------------------------------------------------------------

struct Gsm8kItem {
  std::string question, answer, gold;  // answer: the record's text; gold: the part after ####
};

Gsm8kItem gsm8k_item(const nlohmann::json& j, const std::string& where) {
  const auto q = j.find("question");
  require(q != j.end() && q->is_string(), where, "missing string field \"question\"");
  const auto a = j.find("answer");
  require(a != j.end() && a->is_string(), where, "missing string field \"answer\"");
  Gsm8kItem it{q->get<std::string>(), a->get<std::string>(), gsm8k::gold_answer(a->get<std::string>())};
  require(!it.gold.empty(), where, "empty gold answer (expected the solution after \"####\")");
  return it;
}

std::vector<Gsm8kItem> load_gsm8k(const std::string& path) {
  std::vector<Gsm8kItem> out;
  read_jsonl(path, [&](const nlohmann::json& j, const std::string& where) { out.push_back(gsm8k_item(j, where)); });
  require(!out.empty(), path, "no gsm8k examples in file");
  return out;
}

class Gsm8kTask final : public FileTask<Gsm8kItem> {
 public:
  explicit Gsm8kTask(const TaskOptions& o)
      : template_(o.template_name.empty() ? "chat_think" : o.template_name) {
    apply_template(template_, "");
    require(!o.train_path.empty() || o.records_only, "task.train_path", "gsm8k needs a JSONL file");
    load_files(o, [](const std::string& path) { return load_gsm8k(path); });
  }

  std::string name() const override { return "gsm8k"; }

  double reward(const Example& ex, std::string_view text,
                std::span<const int32_t>) const override {
    return gsm8k::reward(text, ex.meta.at("gold").get<std::string>());
  }

  Example example_from_record(const nlohmann::json& record, const std::string& where) const override {
    return make(gsm8k_item(record, where), 0, "record");
  }

 private:
  Example make(const Gsm8kItem& it, uint64_t index, const char* split) const override {
    Example ex;
    ex.prompt = apply_template(template_, it.question);
    ex.meta = {{"index", index}, {"split", split}, {"gold", it.gold}};
    ex.record = {{"question", it.question}, {"answer", it.answer}};
    return ex;
  }

  std::string template_;
};

// ---- math -----------------------------------------------------------------------------

class MathTask final : public FileTask<math::Item> {
 public:
  explicit MathTask(const TaskOptions& o)
      : template_(o.template_name.empty() ? "chat_think" : o.template_name) {
    apply_template(template_, "");
    require(!o.train_path.empty() || o.records_only, "task.train_path", "math needs a JSONL file");
    require(std::isfinite(o.format_reward), "task.format_reward", "must be a finite number");
    rules_.require_think = template_ == "chat_think";
    rules_.answer_tag = o.answer_tag;
    rules_.format_reward = o.format_reward;
    require(o.answer_prefix.empty() || template_ != "chat_think", "task.answer_prefix",
            "not with the chat_think template (its answer is searched after </think>, which the prompt would precede)");
    prefix_ = o.answer_prefix;
    load_files(o, [](const std::string& path) { return math::load_jsonl(path); });
  }

  std::string name() const override { return "math"; }

  double reward(const Example& ex, std::string_view text,
                std::span<const int32_t>) const override {
    if (prefix_.empty()) return math::reward(text, ex.meta.at("gold").get<std::string>(), rules_);
    return math::reward(prefix_ + std::string(text), ex.meta.at("gold").get<std::string>(), rules_);
  }

  Example example_from_record(const nlohmann::json& record, const std::string& where) const override {
    return make(math::item_from_json(record, where), 0, "record");
  }

 private:
  Example make(const math::Item& it, uint64_t index, const char* split) const override {
    Example ex;
    ex.prompt = apply_template(template_, it.problem) + prefix_;
    ex.meta = {{"index", index}, {"split", split}, {"gold", it.gold}};
    ex.record = {{"problem", it.problem}, {"answer", it.gold}};
    return ex;
  }

  std::string template_;
  math::RewardOptions rules_;
  std::string prefix_;
};

// ---- external -------------------------------------------------------------------------

nlohmann::json external_record(const nlohmann::json& j, const std::string& where) {
  const auto p = j.find("prompt");
  require(p != j.end() && p->is_string(), where, "missing string field \"prompt\"");
  nlohmann::json r = j;
  for (const char* k : {"completion", "tokens", "reward"}) r.erase(k);  // what a rollout adds
  return r;
}

std::vector<nlohmann::json> load_external(const std::string& path) {
  std::vector<nlohmann::json> out;
  read_jsonl(path, [&](const nlohmann::json& j, const std::string& where) { out.push_back(external_record(j, where)); });
  require(!out.empty(), path, "no prompts in file");
  return out;
}

class ExternalTask final : public FileTask<nlohmann::json> {
 public:
  explicit ExternalTask(const TaskOptions& o)
      : template_(o.template_name.empty() ? "raw" : o.template_name), process_(o.command, o.timeout_s) {
    apply_template(template_, "");
    require(!o.command.empty(), "task.command", "the external task needs a command (e.g. \"python3 reward.py\")");
    require(std::isfinite(o.timeout_s) && o.timeout_s > 0, "task.timeout_s", "must be > 0");
    require(!o.train_path.empty() || o.records_only, "task.train_path",
            "the external task needs a JSONL file with a \"prompt\" per line");
    load_files(o, [](const std::string& path) { return load_external(path); });
  }

  std::string name() const override { return "external"; }

  double reward(const Example& ex, std::string_view text, std::span<const int32_t> tokens) const override {
    const Completion c{&ex, text, tokens};
    return rewards(std::span<const Completion>(&c, 1)).at(0);
  }

  std::vector<double> rewards(std::span<const Completion> batch) const override {
    std::vector<std::string> lines;
    lines.reserve(batch.size());
    for (const Completion& c : batch) {
      nlohmann::json j = c.example->record;
      j["completion"] = std::string(c.text);
      j["tokens"] = std::vector<int32_t>(c.tokens.begin(), c.tokens.end());
      lines.push_back(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    auto describe = [&](size_t i) {
      if (i >= batch.size()) return std::string("after the last of ") + std::to_string(batch.size()) + " rollouts";
      const auto& m = batch[i].example->meta;
      return "rollout " + std::to_string(i + 1) + " of " + std::to_string(batch.size()) + ", " +
             m.value("split", std::string("?")) + " example " + std::to_string(m.value("index", uint64_t(0))) +
             ", prompt '" + printable(batch[i].example->record.value("prompt", std::string()), 60) + "'";
    };
    std::lock_guard<std::mutex> lock(mutex_);
    return process_.exchange(lines, describe);
  }

  Example example_from_record(const nlohmann::json& record, const std::string& where) const override {
    return make(external_record(record, where), 0, "record");
  }

 private:
  Example make(const nlohmann::json& rec, uint64_t index, const char* split) const override {
    Example ex;
    ex.prompt = apply_template(template_, rec.at("prompt").get<std::string>());
    ex.meta = {{"index", index}, {"split", split}};
    ex.record = rec;
    return ex;
  }

  std::string template_;
  mutable std::mutex mutex_;
  mutable external::Process process_;
};

// ---- sft ------------------------------------------------------------------------------

nlohmann::json sft_record(const nlohmann::json& j, const std::string& where) {
  nlohmann::json r = nlohmann::json::object();
  const auto p = j.find("prompt");
  if (p != j.end()) {
    require(p->is_string(), where, "\"prompt\" must be a string");
    r["prompt"] = *p;
  } else {
    r["prompt"] = "";
  }
  auto t = j.find("target");
  if (t == j.end()) t = j.find("text");
  require(t != j.end() && t->is_string(), where, "missing string field \"target\" (or \"text\")");
  require(!t->get<std::string>().empty(), where, "empty target");
  r["target"] = *t;
  return r;
}

std::vector<nlohmann::json> load_sft(const std::string& path) {
  std::vector<nlohmann::json> out;
  read_jsonl(path, [&](const nlohmann::json& j, const std::string& where) { out.push_back(sft_record(j, where)); });
  require(!out.empty(), path, "no sft examples in file");
  return out;
}

class SftTask final : public FileTask<nlohmann::json> {
 public:
  explicit SftTask(const TaskOptions& o) : template_(o.template_name.empty() ? "raw" : o.template_name) {
    apply_template(template_, "");
    require(!o.train_path.empty() || o.records_only, "task.train_path",
            "sft needs a JSONL file with \"target\" (or \"text\") per line");
    load_files(o, [](const std::string& path) { return load_sft(path); });
  }
  std::string name() const override { return "sft"; }
  bool teacher_forced() const override { return true; }
  std::string reference(const Example& ex) const override { return ex.meta.at("target").get<std::string>(); }
  double reward(const Example&, std::string_view, std::span<const int32_t>) const override {
    throw InputError("task.name: sft scores the model's log-likelihood of the target, not completions "
                     "(eggroll score does not apply)");
  }
  Example example_from_record(const nlohmann::json& record, const std::string& where) const override {
    return make(sft_record(record, where), 0, "record");
  }

 private:
  Example make(const nlohmann::json& rec, uint64_t index, const char* split) const override {
    Example ex;
    ex.prompt = apply_template(template_, rec.at("prompt").get<std::string>());
    ex.meta = {{"index", index}, {"split", split}, {"target", rec.at("target")}};
    ex.record = {{"target", rec.at("target")}};
    return ex;
  }

  std::string template_;
};

// ---- toy tasks ------------------------------------------------------------------------

enum class ToyKind { Digits, FastZero, RepTok, UniqueTok };

class ToyTask final : public Task {
 public:
  ToyTask(const TaskOptions& o, ToyKind kind)
      : kind_(kind), name_(o.name), val_size_(o.val_size),
        prompt_(apply_template(o.template_name.empty() ? "raw" : o.template_name, o.toy_prompt)) {}

  std::string name() const override { return name_; }
  Example train_example(uint64_t index) const override { return make(index, "train"); }
  size_t val_size() const override { return val_size_; }
  Example val_example(size_t i) const override {
    check_val_index(i, val_size_);
    return make(i, "val");
  }

  double reward(const Example&, std::string_view text,
                std::span<const int32_t> tokens) const override {
    switch (kind_) {
      case ToyKind::Digits: return toy::digits(text);
      case ToyKind::FastZero: return toy::fastzero(tokens);
      case ToyKind::RepTok: return toy::reptok(tokens);
      case ToyKind::UniqueTok: return toy::uniquetok(tokens);
    }
    return 0.0;
  }

  Example example_from_record(const nlohmann::json&, const std::string&) const override {
    return make(0, "record");
  }

 private:
  Example make(uint64_t index, const char* split) const {
    Example ex;
    ex.prompt = prompt_;
    ex.meta = {{"index", index}, {"split", split}};
    return ex;
  }

  ToyKind kind_;
  std::string name_;
  size_t val_size_;
  std::string prompt_;
};

}  // namespace

std::unique_ptr<Task> make_task(const TaskOptions& opts) {
  const std::string& n = opts.name;
  if (n == "countdown") return std::make_unique<CountdownTask>(opts);
  if (n == "gsm8k") return std::make_unique<Gsm8kTask>(opts);
  if (n == "math") return std::make_unique<MathTask>(opts);
  if (n == "external") return std::make_unique<ExternalTask>(opts);
  if (n == "sft") return std::make_unique<SftTask>(opts);
  if (n == "digits") return std::make_unique<ToyTask>(opts, ToyKind::Digits);
  if (n == "fastzero") return std::make_unique<ToyTask>(opts, ToyKind::FastZero);
  if (n == "reptok") return std::make_unique<ToyTask>(opts, ToyKind::RepTok);
  if (n == "uniquetok") return std::make_unique<ToyTask>(opts, ToyKind::UniqueTok);
  throw InputError("task.name: unknown task '" + n +
                   "' (expected countdown, gsm8k, math, external, sft, digits, fastzero, reptok or uniquetok)");
}

// ---- gsm8k scoring --------------------------------------------------------------------

namespace gsm8k {

namespace {
bool in_class(char c) {  // [$0-9.,]
  return c == '$' || c == '.' || c == ',' || (c >= '0' && c <= '9');
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

std::optional<std::string> extract_predicted_answer(std::string_view text) {
  // re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", text) scans left to right; at each position
  // the first alternative is tried first (greedy, and nothing follows it, so it takes the
  // longest run), then the second; a match resumes the scan after its end.
  std::optional<std::string_view> last;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const bool minus = text[i] == '-';
    const size_t body = minus ? i + 1 : i;
    size_t run = body;
    while (run < n && in_class(text[run])) ++run;
    if (run - body >= 2) {  // alternative 1 (when text[i] == '-', an empty "-?" cannot match)
      last = text.substr(i, run - i);
      i = run;
      continue;
    }
    size_t digits = body;
    while (digits < n && is_digit(text[digits])) ++digits;
    if (digits > body) {  // alternative 2
      last = text.substr(i, digits - i);
      i = digits;
      continue;
    }
    ++i;
  }
  if (!last) return std::nullopt;
  std::string out;
  for (char c : trim(*last))
    if (c != ',' && c != '$') out += c;
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::string gold_answer(std::string_view answer) {
  const size_t p = answer.rfind("####");
  const std::string_view tail = trim(p == std::string_view::npos ? answer : answer.substr(p + 4));
  std::string out;
  for (char c : tail)
    if (c != ',') out += c;
  return out;
}

double reward(std::string_view completion, std::string_view gold) {
  static constexpr std::string_view kThink = "</think>";
  const size_t p = completion.find(kThink);
  if (p == std::string_view::npos) return 0.0;
  const auto pred = extract_predicted_answer(completion.substr(p + kThink.size()));
  return pred && *pred == gold ? 1.0 : 0.0;
}

}  // namespace gsm8k

// ---- toy rewards ----------------------------------------------------------------------

namespace toy {

double digits(std::string_view text) {
  return static_cast<double>(
      std::count_if(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }));
}

double fastzero(std::span<const int32_t> tokens) {
  const auto it = std::find(tokens.begin(), tokens.end(), 0);
  if (it == tokens.end()) return -2.0 * static_cast<double>(tokens.size());
  return -static_cast<double>(it - tokens.begin());
}

double reptok(std::span<const int32_t> tokens) {
  std::unordered_map<int32_t, size_t> counts;
  size_t best = 0;
  for (int32_t t : tokens) best = std::max(best, ++counts[t]);
  return static_cast<double>(best);
}

double uniquetok(std::span<const int32_t> tokens) {
  std::vector<int32_t> s(tokens.begin(), tokens.end());
  std::sort(s.begin(), s.end());
  return static_cast<double>(std::unique(s.begin(), s.end()) - s.begin());
}

}  // namespace toy

}  // namespace eggroll
