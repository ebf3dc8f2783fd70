#include "tasks/countdown.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "core/error.h"
#include "core/philox.h"
#include "tasks/jsonl.h"

namespace eggroll::countdown {

// ---- parser ---------------------------------------------------------------------------

namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  ParseResult run() {
    ParseResult r;
    double v = 0.0;
    if (!expr(v, 0)) return fail(r);
    skip_blanks();
    if (pos_ < s_.size() && s_[pos_] == '=') {
      ++pos_;
      skip_blanks();
      int64_t t = 0;
      if (!integer(t, /*record=*/false)) return fail(r);
      r.claimed = t;
      skip_blanks();
    }
    if (pos_ != s_.size()) {
      error_ = "unexpected character at offset " + std::to_string(pos_);
      return fail(r);
    }
    r.ok = true;
    r.value = v;
    r.numbers = std::move(numbers_);
    return r;
  }

 private:
  ParseResult& fail(ParseResult& r) {
    r.ok = false;
    r.error = error_.empty() ? "invalid expression" : error_;
    r.numbers.clear();
    r.claimed.reset();
    return r;
  }

  static bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  void skip_blanks() {
    while (pos_ < s_.size() && blank(s_[pos_])) ++pos_;
  }
  bool peek(char c) {
    skip_blanks();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  bool set_error(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }
  bool finite(double v) { return std::isfinite(v) ? true : set_error("non-finite value"); }

  bool expr(double& v, int depth) {
    if (!term(v, depth)) return false;
    for (;;) {
      if (peek('+') || peek('-')) {
        const char op = s_[pos_++];
        double rhs = 0.0;
        if (!term(rhs, depth)) return false;
        v = op == '+' ? v + rhs : v - rhs;
        if (!finite(v)) return false;
      } else {
        return true;
      }
    }
  }

  bool term(double& v, int depth) {
    if (!unary(v, depth)) return false;
    for (;;) {
      if (peek('*') || peek('/')) {
        const char op = s_[pos_++];
        double rhs = 0.0;
        if (!unary(rhs, depth)) return false;
        if (op == '/') {
          if (rhs == 0.0) return set_error("division by zero");
          v /= rhs;
        } else {
          v *= rhs;
        }
        if (!finite(v)) return false;
      } else {
        return true;
      }
    }
  }

  bool unary(double& v, int depth) {
    if (depth >= kMaxDepth) return set_error("nested too deeply");
    if (peek('-') || peek('+')) {
      const char op = s_[pos_++];
      if (!unary(v, depth + 1)) return false;
      if (op == '-') v = -v;
      return true;
    }
    return primary(v, depth);
  }

  bool primary(double& v, int depth) {
    skip_blanks();
    if (pos_ >= s_.size()) return set_error("unexpected end of expression");
    if (s_[pos_] == '(') {
      ++pos_;
      if (!expr(v, depth + 1)) return false;
      if (!peek(')')) return set_error("missing ')'");
      ++pos_;
      return true;
    }
    int64_t n = 0;
    if (!integer(n, /*record=*/true)) return false;
    v = static_cast<double>(n);
    return true;
  }

  bool integer(int64_t& out, bool record) {
    const size_t start = pos_;
    int64_t n = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (pos_ - start >= static_cast<size_t>(kMaxDigits)) return set_error("number too long");
      n = n * 10 + (s_[pos_] - '0');
      ++pos_;
    }
    if (pos_ == start) return set_error("expected a number at offset " + std::to_string(pos_));
    if (pos_ < s_.size() && s_[pos_] == '.') return set_error("decimal numbers are not allowed");
    out = n;
    if (record) numbers_.push_back(n);
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::vector<int64_t> numbers_;
  std::string error_;
};

}  // namespace

ParseResult parse_expression(std::string_view text) { return Parser(text).run(); }

std::optional<std::string_view> extract_answer(std::string_view completion) {
  static constexpr std::string_view kOpen = "<answer>", kClose = "</answer>";
  std::optional<std::string_view> last;
  size_t pos = 0;
  for (;;) {
    const size_t a = completion.find(kOpen, pos);
    if (a == std::string_view::npos) break;
    const size_t b = completion.find(kClose, a + kOpen.size());
    if (b == std::string_view::npos) break;
    last = trim_blanks(completion.substr(a + kOpen.size(), b - a - kOpen.size()));
    pos = b + kClose.size();
  }
  return last;
}

double reward(std::string_view completion, std::span<const int64_t> nums, int64_t target) {
  constexpr double kFormat = 0.1, kCorrect = 1.0;
  const auto answer = extract_answer(completion);
  if (!answer) return 0.0;
  const ParseResult p = parse_expression(*answer);
  if (!p.ok) return kFormat;
  if (p.claimed && *p.claimed != target) return kFormat;
  std::vector<int64_t> used = p.numbers, given(nums.begin(), nums.end());
  std::sort(used.begin(), used.end());
  std::sort(given.begin(), given.end());
  if (used != given) return kFormat;
  return std::fabs(p.value - static_cast<double>(target)) < 1e-5 ? kCorrect : kFormat;
}

// ---- generation -----------------------------------------------------------------------

namespace {

// A deterministic stream of 32-bit words: Philox blocks with key = seed and counter =
// (draw block, index low, index high, split tag).
class Stream {
 public:
  Stream(uint64_t seed, uint32_t tag, uint64_t index)
      : k0_(static_cast<uint32_t>(seed)), k1_(static_cast<uint32_t>(seed >> 32)),
        i0_(static_cast<uint32_t>(index)), i1_(static_cast<uint32_t>(index >> 32)), tag_(tag) {}

  uint32_t next() {
    if (used_ == 4) {
      block_ = philox4x32_10(ctr_++, i0_, i1_, tag_, k0_, k1_);
      used_ = 0;
    }
    return block_.v[used_++];
  }
  uint64_t next64() {
    const uint64_t hi = next();
    return (hi << 32) | next();
  }
  // Uniform integer in [lo, hi] (unbiased: rejection sampling).
  int64_t uniform(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;
    if (span == 0) return static_cast<int64_t>(next64());  // full 64-bit range
    const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t x;
    do x = next64();
    while (x >= limit);
    return lo + static_cast<int64_t>(x % span);
  }

 private:
  uint32_t k0_, k1_, i0_, i1_, tag_;
  uint32_t ctr_ = 0;
  Philox4x32 block_{};
  int used_ = 4;
};

struct Item {
  int64_t value;
  std::string text;
  bool leaf;
};

std::string wrap(const Item& it) { return it.leaf ? it.text : "(" + it.text + ")"; }

// One candidate: random numbers combined by a random binary tree. False when an operation
// would overflow (then the caller redraws).
bool candidate(Stream& rng, const GeneratorOptions& o, Problem& p) {
  const int count = static_cast<int>(rng.uniform(o.min_numbers, o.max_numbers));
  p.nums.clear();
  std::vector<Item> items;
  for (int i = 0; i < count; ++i) {
    const int64_t v = rng.uniform(o.min_value, o.max_value);
    p.nums.push_back(v);
    items.push_back({v, std::to_string(v), true});
  }
  while (items.size() > 1) {
    const size_t i = static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(items.size()) - 1));
    size_t j = static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(items.size()) - 2));
    if (j >= i) ++j;  // j != i; (items[i], items[j]) is an ordered pair
    const Item& a = items[i];
    const Item& b = items[j];
    struct Op {
      char c;
      int64_t v;
    };
    Op ops[4];
    int n_ops = 0;
    int64_t v = 0;
    if (!__builtin_add_overflow(a.value, b.value, &v)) ops[n_ops++] = {'+', v};
    if (a.value > b.value) ops[n_ops++] = {'-', a.value - b.value};
    if (!__builtin_mul_overflow(a.value, b.value, &v)) ops[n_ops++] = {'*', v};
    if (b.value > 0 && a.value % b.value == 0) ops[n_ops++] = {'/', a.value / b.value};
    if (n_ops == 0) return false;
    const Op op = ops[rng.uniform(0, n_ops - 1)];
    Item c{op.v, wrap(a) + " " + op.c + " " + wrap(b), false};
    items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::max(i, j)));
    items.erase(items.begin() + static_cast<std::ptrdiff_t>(std::min(i, j)));
    items.push_back(std::move(c));
  }
  p.target = items[0].value;
  p.solution = items[0].text;
  return true;
}

}  // namespace

void validate_options(const GeneratorOptions& o) {
  require(o.min_numbers >= 2 && o.min_numbers <= 8, "task.min_numbers",
          "must be in [2, 8], got " + std::to_string(o.min_numbers));
  require(o.max_numbers >= o.min_numbers && o.max_numbers <= 8, "task.max_numbers",
          "must be in [task.min_numbers, 8], got " + std::to_string(o.max_numbers));
  require(o.min_value >= 1 && o.min_value <= 1000000, "task.min_value",
          "must be in [1, 1000000], got " + std::to_string(o.min_value));
  require(o.max_value >= o.min_value && o.max_value <= 1000000, "task.max_value",
          "must be in [task.min_value, 1000000], got " + std::to_string(o.max_value));
  require(o.min_target >= 1, "task.min_target", "must be >= 1, got " + std::to_string(o.min_target));
  require(o.max_target >= o.min_target, "task.max_target",
          "must be >= task.min_target, got " + std::to_string(o.max_target));
}

bool is_validation_problem(std::span<const int64_t> nums, int64_t target) {
  std::vector<int64_t> s(nums.begin(), nums.end());
  std::sort(s.begin(), s.end());
  uint64_t h = splitmix64(static_cast<uint64_t>(target) ^ 0x636f756e74646f77ull);  // "countdow"
  for (int64_t v : s) h = splitmix64(h ^ static_cast<uint64_t>(v));
  return (h & 7u) == 0;
}

Problem generate(const GeneratorOptions& o, uint64_t seed, bool validation, uint64_t index) {
  constexpr int kAttempts = 100000;
  Stream rng(seed, validation ? 0x76616c31u /*"val1"*/ : 0x74726e31u /*"trn1"*/, index);
  Problem p;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (!candidate(rng, o, p)) continue;
    if (p.target < o.min_target || p.target > o.max_target) continue;
    if (is_validation_problem(p.nums, p.target) != validation) continue;
    return p;
  }
  throw InputError("task.min_target: no countdown problem with " +
                   std::to_string(o.min_numbers) + "-" + std::to_string(o.max_numbers) +
                   " numbers in [" + std::to_string(o.min_value) + ", " +
                   std::to_string(o.max_value) + "] reaches a target in [" +
                   std::to_string(o.min_target) + ", " + std::to_string(o.max_target) +
                   "] (gave up after " + std::to_string(kAttempts) + " attempts)");
}

std::string question(const Problem& p) {
  std::string nums = "[";
  for (size_t i = 0; i < p.nums.size(); ++i) {
    if (i) nums += ", ";
    nums += std::to_string(p.nums[i]);
  }
  nums += "]";
  return "Using the numbers " + nums + ", create an equation that equals " +
         std::to_string(p.target) +
         ". You can use basic arithmetic operations (+, -, *, /) and each number can only be "
         "used once. Show your work in <think> </think> tags. And return the final answer in "
         "<answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.";
}

// ---- JSONL ----------------------------------------------------------------------------

namespace {

// An integer held by a JSON number (3 or 3.0), within +-1e15; nullopt otherwise.
std::optional<int64_t> json_integer(const nlohmann::json& v) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > 1000000000000000ull) return std::nullopt;
      return static_cast<int64_t>(u);
    }
    const int64_t i = v.get<int64_t>();
    if (i > 1000000000000000ll || i < -1000000000000000ll) return std::nullopt;
    return i;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 1e15 || d != std::floor(d)) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

Problem problem_from_json(const nlohmann::json& j, const std::string& where) {
  Problem p;
  const auto nums = j.find("nums");
  require(nums != j.end() && nums->is_array() && !nums->empty(), where,
          "\"nums\" must be a non-empty array of integers");
  require(nums->size() <= 16, where, "\"nums\" has more than 16 numbers");
  for (const auto& v : *nums) {
    const auto i = json_integer(v);
    require(i.has_value() && *i >= 0, where,
            "\"nums\" must hold integers in [0, 1e15], got " + v.dump());
    p.nums.push_back(*i);
  }
  const auto t = j.find("target");
  require(t != j.end(), where, "missing \"target\"");
  const auto ti = json_integer(*t);
  require(ti.has_value(), where, "\"target\" must be an integer in [-1e15, 1e15], got " + t->dump());
  p.target = *ti;
  return p;
}

std::vector<Problem> load_jsonl(const std::string& path) {
  std::vector<Problem> out;
  read_jsonl(path, [&](const nlohmann::json& j, const std::string& where) {
    out.push_back(problem_from_json(j, where));
  });
  require(!out.empty(), path, "no countdown problems in file");
  return out;
}

}  // namespace eggroll::countdown
