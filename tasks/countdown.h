#pragma once
// Countdown: given 3-4 numbers and a target, write an arithmetic expression that uses each
// number exactly once and equals the target (TinyZero / reasoning-gym style).
//
// Reward of a completion (TinyZero's rule; evaluated with our own parser, never eval):
//   1.0  the answer is a valid expression that uses exactly the given numbers (as a multiset)
//        and |value - target| < 1e-5
//   0.1  an answer tag pair exists, but its content is empty, invalid or wrong
//   0.0  no complete <answer>...</answer> pair
// The answer is the content of the LAST match of the non-greedy pattern
// <answer>(.*?)</answer> ('.' includes newlines), i.e. scanning left to right each <answer>
// is closed by the first </answer> after it, and the last such pair counts; its content is
// trimmed of surrounding whitespace.
//
// Expression language (decided here):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/') unary)*
//   unary   := ('-' | '+') unary | primary              (unary minus/plus allowed, as Python)
//   primary := INTEGER | '(' expr ')'
//   answer  := expr [ '=' INTEGER ]    a trailing "= T" is tolerated when T equals the target
//                                       ("(1+2)*3 = 9"); a different T makes the answer wrong
// INTEGER is a run of ASCII digits (at most 15, leading zeros allowed: "07" is 7). ASCII
// blanks (space, tab, CR, LF) may appear between tokens. Anything else (decimal points,
// 'x', unicode operators, letters, empty operands) makes the answer invalid. Nesting deeper
// than kMaxDepth (parentheses plus unary signs) is invalid, so hostile input cannot exhaust
// the stack. Arithmetic is in double precision; division by zero and non-finite intermediate
// values are invalid.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace eggroll::countdown {

constexpr int kMaxDepth = 64;
constexpr int kMaxDigits = 15;

struct Problem {
  std::vector<int64_t> nums;  // in the order shown to the model
  int64_t target = 0;
  std::string solution;       // one expression reaching the target ("" when loaded from file)
};

struct ParseResult {
  bool ok = false;
  double value = 0.0;
  std::vector<int64_t> numbers;  // the integer literals used, in order (excluding "= T")
  std::optional<int64_t> claimed;  // T of a trailing "= T"
  std::string error;             // why it is invalid, when !ok
};

// Parses and evaluates an answer expression (the grammar above). Never throws.
ParseResult parse_expression(std::string_view text);

// The trimmed content of the last complete <answer>...</answer> pair, or nullopt.
std::optional<std::string_view> extract_answer(std::string_view completion);

// The reward rule above.
double reward(std::string_view completion, std::span<const int64_t> nums, int64_t target);

// ---- problem generation --------------------------------------------------------------

struct GeneratorOptions {
  int min_numbers = 3, max_numbers = 4;      // how many numbers per problem
  int64_t min_value = 1, max_value = 100;    // range of each number
  int64_t min_target = 100, max_target = 999;  // range of the target (reasoning-gym defaults)
};

// InputError naming the task.* key on bad options.
void validate_options(const GeneratorOptions& o);

// Split of the generated problem space: a fixed hash of (sorted numbers, target) puts 1/8
// of all problems in the validation split; training problems never come from it, so the two
// splits are disjoint as sets of problems, whatever their indices.
bool is_validation_problem(std::span<const int64_t> nums, int64_t target);

// The index-th problem of a split (validation = false: training), a pure function of
// (options, seed, split, index). Always solvable: the numbers are combined by a random
// binary expression tree over all of them (+, *, '-' only when the result is positive, '/'
// only when exact), the target is its value, and candidates are redrawn until the target
// lies in [min_target, max_target] and the problem belongs to the requested split.
// Throws InputError when no such problem turns up after many attempts (impossible ranges).
// With the defaults (3-4 numbers in [1, 100], target in [100, 999]) about 57% of problems have
// 3 numbers; '+' is the most common operation (products often leave the range), '/' is rare.
Problem generate(const GeneratorOptions& o, uint64_t seed, bool validation, uint64_t index);

// "Using the numbers [a, b, c], create an equation that equals T. ..." (TinyZero's prompt,
// without any chat template).
std::string question(const Problem& p);

// One data record: "nums" (array of integers >= 0) and "target" (integer). InputError
// "<where>: ..." naming the missing or malformed field.
Problem problem_from_json(const nlohmann::json& j, const std::string& where);

// Loads a JSONL file: one object per line with "nums" (array of integers >= 0) and "target"
// (integer); blank lines are skipped. InputError "<path>:<line>: ..." on a malformed line,
// "<path>: ..." when it cannot be read or holds no problem.
std::vector<Problem> load_jsonl(const std::string& path);

}  // namespace eggroll::countdown
