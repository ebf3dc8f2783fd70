#pragma once
// Math answers (task.name: math): MATH / DeepScaleR / AIME-style problems whose answers are
// integers, fractions, roots, powers, multiples of pi, intervals, tuples or short LaTeX.
//
// Data: JSONL, one object per line, with "problem" (or "question") and the gold answer in
// "answer" (a string or a number; a string holding \boxed{...} is reduced to the boxed part)
// or, when there is no "answer", in "solution" (its last \boxed{...}).
//
// Which part of a completion is the answer:
//   - with thinking required (the chat_think template), only the text after the first
//     "</think>" is searched; no "</think>" means no answer (reward 0);
//   - the answer is the content of the last well-formed \boxed{...} (braces balanced:
//     "\boxed{\frac{1}{2}}" -> "\frac{1}{2}"), \fbox{...}, or "\boxed 5" (up to the next '$' or
//     line end) in that text;
//   - when there is none, the content of the last <TAG>...</TAG> pair (task.answer_tag, default
//     "answer"; a \boxed inside it is unwrapped). Neither: no answer.
//
// Normalisation (normalize(); applied to both the gold and the predicted answer, in order):
//   N1  surrounding $...$, \(...\), \[...\] removed             "$\frac12$" -> "\frac12"
//   N2  LaTeX spacing \! \, \; \: "\ " and ~ become spaces         "1\,000" -> "1 000"
//   N3  \left and \right dropped, \dfrac/\tfrac -> \frac, \displaystyle dropped
//                                                                "\left(1,2\right)" -> "(1,2)"
//   N4  \text{X} \textbf{X} \textit{X} \textrm{X} \mathrm{X} \mathbf{X} \mbox{X} -> X
//                                                                "5\text{ cm}" -> "5 cm"
//   N5  degrees removed: ^\circ ^{\circ} \circ \degree and the degree sign
//                                                                "90^\circ" -> "90"
//   N6  \% % \$ $ removed                                        "50\%" -> "50"
//   N7  trailing unit words removed (units, degrees, cm, meters, inches, feet, dollars, cents,
//       hours, minutes, seconds, days, ..., optionally squared/cubed), when a number, ')' or
//       '}' precedes them                                       "12 square units" -> "12"
//   N8  all whitespace removed; ASCII letters lower-cased       "X + 1" -> "x+1"
//   N9  trailing '.' removed                                      "5." -> "5"
//   N10 \cdot \times -> '*', \div -> '/'                          "2\times3" -> "2*3"
//   N11 one-character arguments braced: \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2},
//       \sqrt2 -> \sqrt{2}
//   N12 a single variable assignment dropped: "x=5" -> "5", "\theta=\pi" -> "\pi" (exactly
//       one '=', its left side a letter, a letter with a subscript digit, or a \command)
//   N13 braces around the whole answer dropped: "{5}" -> "5"
//   N14 a decimal point without a leading digit gets a 0: ".5" -> "0.5", "-.5" -> "-0.5"
//   N15 thousands separators removed when the whole answer is one number written with them:
//       "1,000" -> "1000", "1{,}000" -> "1000" (but "(1,000)" stays a pair)
//
// Equivalence (equivalent(gold, pred)), after normalising both:
//   E1  equal strings are equivalent                          "\frac{1}{2}" == "\frac{1}{2}"
//   E2  when both evaluate to finite numbers (evaluate()), they are equivalent when
//       |a - b| <= 1e-6 * max(|a|, |b|) or |a - b| <= 1e-9:  "0.5" == "1/2" == "\frac{1}{2}",
//       "\sqrt{2}/2" == "\frac{\sqrt2}{2}", "2\pi" == "\pi*2", "5.0" == "5"
//   E3  tuples and intervals "(a,b)", "[a,b)", ... compare element-wise (E1/E2 per element)
//       and need the same brackets and length: "(1,2)" != "(2,1)", "[1,2)" != "[1,2]"
//   E4  sets "\{a,b\}" and unbracketed lists "a,b" compare as multisets (order ignored):
//       "2,3" == "3,2"
//   E5  anything else is not equivalent ("x+1" != "1+x": no symbolic algebra).
//
// Evaluator (evaluate(); our own recursive-descent parser over the normalised text, never eval):
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/' | <implicit>) unary)*   implicit product: "2\sqrt{3}", "3\pi",
//              "2(1+1)"; an integer followed by \frac{int}{int} is a mixed number: "3\frac12" = 3.5
//   unary   := ('-' | '+') unary | power
//   power   := primary ['^' (primary | '-' primary)]      right-associative: "2^3^2" = 2^9
//   primary := NUMBER | '(' expr ')' | '{' expr '}' | \frac{expr}{expr} | \sqrt[n]{expr}
//              | \sqrt{expr} | \pi | pi
//   NUMBER  := digits ['.' digits]   (at most kMaxDigits digits)
// Nesting deeper than kMaxDepth fails, so hostile input cannot exhaust the stack; an exponent
// (or root index) whose absolute value exceeds kMaxExponent fails, and so do division by zero,
// even roots of negative numbers and any non-finite intermediate value. Answers longer than
// kMaxAnswerBytes are compared as trimmed strings only.
//
// Reward (reward()): 1 when an answer was found and is equivalent to the gold answer;
// format_reward (task.format_reward, default 0) when an answer was found but is not; 0 when
// no answer was found.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace eggroll::math {

constexpr int kMaxDepth = 64;
constexpr double kMaxExponent = 1024;
constexpr size_t kMaxDigits = 64;
constexpr size_t kMaxAnswerBytes = 4096;

// Content of the last well-formed \boxed{...} / \fbox{...} / "\boxed x" in text, or nullopt.
std::optional<std::string> last_boxed(std::string_view text);

// Content of the last <tag>...</tag> pair (non-greedy, as countdown's <answer>), trimmed.
std::optional<std::string> last_tag(std::string_view text, std::string_view tag);

struct RewardOptions {
  bool require_think = true;         // search only after the first "</think>"
  std::string answer_tag = "answer";  // fallback tag ("" = none)
  double format_reward = 0.0;        // an answer was found but is wrong
};

// The completion's answer under the rules above (not normalised), or nullopt.
std::optional<std::string> extract_answer(std::string_view completion, const RewardOptions& o);

// The gold answer of a "solution" text: its last \boxed{...}, else the trimmed text.
std::string gold_from_solution(std::string_view solution);

// Rules N1-N15.
std::string normalize(std::string_view answer);

// Value of a normalised answer (the grammar above), or nullopt when it is not a number.
// Never throws.
std::optional<double> evaluate(std::string_view normalized);

// E1-E5 on two raw (not yet normalised) answers.
bool equivalent(std::string_view gold, std::string_view predicted);

double reward(std::string_view completion, std::string_view gold, const RewardOptions& o);

struct Item {
  std::string problem;  // the question shown to the model (no template)
  std::string gold;     // the gold answer, not normalised
};

// One data record ("problem"/"question", "answer"/"solution"). InputError "<where>: ..." naming
// the missing or mistyped field.
Item item_from_json(const nlohmann::json& j, const std::string& where);

// Every record of a JSONL file; InputError "<path>: ..." when it holds none.
std::vector<Item> load_jsonl(const std::string& path);

}  // namespace eggroll::math
