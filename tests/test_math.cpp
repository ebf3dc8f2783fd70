// The math task: answer extraction, every normalisation rule (N1-N15) and equivalence rule
// (E1-E5) of tasks/math.h with positive and negative cases, the evaluator's limits, the
// reward, the data records and the task built from a file.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "tasks/math.h"
#include "tasks/tasks.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

struct Case {
  const char* gold;
  const char* pred;
  bool same;
  const char* rule;
};

// gold, predicted answer, equivalent?, the rule the case exercises
const Case kCases[] = {
    // E1 / E2 numbers
    {"5", "5", true, "E1 identical"},
    {"5", "6", false, "E2 different integers"},
    {"5", "5.0", true, "E2 5.0"},
    {"5", "5.000001", true, "E2 within relative 1e-6"},
    {"5", "5.0001", false, "E2 outside the tolerance"},
    {"0", "0.0", true, "E2 zero"},
    {"-3", "-3", true, "E1 negative"},
    {"-3", "3", false, "E2 sign"},
    // the known traps
    {"\\frac{1}{2}", "0.5", true, "trap: fraction vs decimal"},
    {"\\frac{1}{2}", "1/2", true, "trap: fraction vs slash"},
    {"0.5", "1/2", true, "decimal vs slash"},
    {"\\frac{1}{2}", "\\frac{1}{3}", false, "different fractions"},
    {"1000", "1,000", true, "trap: thousands separator (N15)"},
    {"1000", "1{,}000", true, "N15 LaTeX separator"},
    {"1000", "1,00", false, "N15 malformed separator"},
    {"3", "x=3", true, "trap: variable assignment (N12)"},
    {"3", "x = 3", true, "N12 with spaces"},
    {"\\pi", "\\theta=\\pi", true, "N12 command variable"},
    {"3", "x=4", false, "N12 wrong value"},
    {"3", "2x=3", false, "N12 left side not a variable"},
    {"(1,2)", "(2,1)", false, "trap: ordered tuple (E3)"},
    {"(1,2)", "(1,2)", true, "E3 same tuple"},
    {"(1,2)", "\\left(1, 2\\right)", true, "E3 + N3 \\left \\right"},
    {"(1,2)", "(1.0,\\frac{4}{2})", true, "E3 numeric elements"},
    {"(1,2)", "(1,2,3)", false, "E3 length"},
    {"\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2", true, "trap: roots"},
    {"\\frac{\\sqrt2}{2}", "\\sqrt{2}/2", true, "trap: roots, N11"},
    {"\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt{3}}{2}", false, "different roots"},
    {"\\frac{1}{2}", "\\frac{1}{2", false, "trap: malformed braces"},
    {"\\frac{1}{2}", "\\frac{1}}{2}", false, "malformed braces 2"},
    {"}{", "}{", true, "malformed but identical"},
    // N1 delimiters
    {"\\frac{1}{2}", "$\\frac{1}{2}$", true, "N1 dollars"},
    {"7", "\\(7\\)", true, "N1 \\( \\)"},
    {"7", "\\[7\\]", true, "N1 \\[ \\]"},
    // N2 spacing
    {"1000", "1\\,000", true, "N2 thin space"},
    {"12", "1\\!2", true, "N2 negative space"},
    // N3
    {"\\frac{3}{4}", "\\dfrac{3}{4}", true, "N3 dfrac"},
    {"\\frac{3}{4}", "\\tfrac34", true, "N3 tfrac + N11"},
    {"\\frac{3}{4}", "\\displaystyle\\frac{3}{4}", true, "N3 displaystyle"},
    // N4 text
    {"5", "5\\text{ cm}", true, "N4 + N7 units in text"},
    {"yes", "\\text{Yes}", true, "N4 + N8 text answer"},
    {"yes", "\\text{No}", false, "N4 different text"},
    {"east", "\\textbf{east}", true, "N4 textbf"},
    {"5", "\\mbox{5}", true, "N4 mbox"},
    // N5 degrees
    {"90", "90^\\circ", true, "N5 ^\\circ"},
    {"90", "90^{\\circ}", true, "N5 ^{\\circ}"},
    {"90", "90\xC2\xB0", true, "N5 degree sign"},
    {"90", "45^\\circ", false, "N5 wrong angle"},
    // N6 percent, dollars
    {"50", "50\\%", true, "N6 \\%"},
    {"50", "50%", true, "N6 %"},
    {"20", "\\$20", true, "N6 \\$"},
    {"20.50", "\\$20.5", true, "N6 + E2 trailing zero"},
    // N7 units
    {"12", "12 square units", true, "N7 square units"},
    {"10", "10 degrees", true, "N7 degrees"},
    {"4", "4 inches", true, "N7 inches"},
    {"36", "36 cm^2", true, "N7 cm^2"},
    {"36", "36 dogs", false, "N7 not a unit"},
    {"units", "units", true, "N7 the word alone stays"},
    // N8 whitespace and case
    {"x+1", "x + 1", true, "N8 spaces"},
    {"A", "a", true, "N8 case"},
    {"x+1", "1+x", false, "E5 no symbolic algebra"},
    // N9 trailing period
    {"5", "5.", true, "N9 trailing period"},
    // N10 operators
    {"6", "2\\times3", true, "N10 times"},
    {"6", "2\\cdot 3", true, "N10 cdot"},
    {"2", "6\\div3", true, "N10 div"},
    // N11
    {"\\frac{1}{2}", "\\frac12", true, "N11 \\frac12"},
    {"\\frac{1}{2}", "\\frac1{2}", true, "N11 \\frac1{2}"},
    {"\\sqrt{2}", "\\sqrt2", true, "N11 \\sqrt2"},
    {"2\\sqrt{2}", "\\sqrt{8}", true, "E2 implicit product"},
    // N13 outer braces
    {"5", "{5}", true, "N13 braces"},
    // N14 leading zero
    {"0.5", ".5", true, "N14 .5"},
    {"-0.5", "-.5", true, "N14 -.5"},
    {"0.25", ".5", false, "N14 different"},
    // evaluator
    {"8", "2^3", true, "power"},
    {"512", "2^3^2", true, "right-associative power"},
    {"\\frac{1}{8}", "2^{-3}", true, "negative exponent"},
    {"3", "\\sqrt[3]{27}", true, "cube root"},
    {"-3", "\\sqrt[3]{-27}", true, "odd root of a negative"},
    {"2\\pi", "\\pi*2", true, "pi"},
    {"2\\pi", "6.283185307", true, "pi numeric"},
    {"2\\pi", "6.28", false, "pi too coarse"},
    {"3.5", "3\\frac{1}{2}", true, "mixed number"},
    {"-3.5", "-3\\frac12", true, "negative mixed number"},
    {"6", "2(1+2)", true, "implicit product with parentheses"},
    {"1", "\\frac{2}{0}", false, "division by zero"},
    {"\\sqrt{-4}", "\\sqrt{-4}", true, "E1 for a non-number"},
    {"2", "\\sqrt{-4}", false, "even root of a negative"},
    // E3 intervals
    {"[1,2)", "[1,2)", true, "E3 interval"},
    {"[1,2)", "[1,2]", false, "E3 closed vs half-open"},
    {"(-\\infty,3]", "(-\\infty, 3]", true, "E3 infinity, spaces"},
    {"[0.5,1)", "[\\frac12,1)", true, "E3 numeric endpoint"},
    // E4 sets and lists
    {"\\{1,2\\}", "\\{2,1\\}", true, "E4 set order"},
    {"\\{1,2\\}", "\\{1,3\\}", false, "E4 set elements"},
    {"2,3", "3, 2", true, "E4 list order"},
    {"2,3", "2,3,4", false, "E4 list length"},
    {"2,3", "(2,3)", false, "list vs tuple"},
    // empty answers
    {"5", "", false, "empty prediction"},
    {"5", "   ", false, "blank prediction"},
};

double math_reward(const std::string& completion, const std::string& gold, bool think = true, double fmt = 0.0) {
  math::RewardOptions o;
  o.require_think = think;
  o.format_reward = fmt;
  return math::reward(completion, gold, o);
}

struct TempFile {
  fs::path path;
  TempFile(const std::string& name, const std::string& content) {
    path = fs::temp_directory_path() / ("eggroll_test_math_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  std::string str() const { return path.string(); }
};

}  // namespace

TEST_CASE("math equivalence: every normalisation and equivalence rule", "[math]") {
  size_t n = 0;
  for (const Case& c : kCases) {
    INFO(c.rule << ": gold '" << c.gold << "' predicted '" << c.pred << "' (normalised '" << math::normalize(c.gold)
                << "' / '" << math::normalize(c.pred) << "')");
    CHECK(math::equivalent(c.gold, c.pred) == c.same);
    if (std::string(c.pred).find_first_not_of(' ') != std::string::npos) {
      INFO("symmetric");
      CHECK(math::equivalent(c.pred, c.gold) == c.same);
    }
    n++;
  }
  CHECK(n >= 60);
}

TEST_CASE("math normalize: the documented examples", "[math]") {
  CHECK(math::normalize("$\\frac12$") == "\\frac{1}{2}");
  CHECK(math::normalize("\\left(1,2\\right)") == "(1,2)");
  CHECK(math::normalize("\\leftarrow") == "\\leftarrow");
  CHECK(math::normalize("5\\text{ cm}") == "5");
  CHECK(math::normalize("90^\\circ") == "90");
  CHECK(math::normalize("50\\%") == "50");
  CHECK(math::normalize("12 square units") == "12");
  CHECK(math::normalize("X + 1") == "x+1");
  CHECK(math::normalize("5.") == "5");
  CHECK(math::normalize("2\\times3") == "2*3");
  CHECK(math::normalize("\\frac1{2}") == "\\frac{1}{2}");
  CHECK(math::normalize("\\sqrt2") == "\\sqrt{2}");
  CHECK(math::normalize("x=5") == "5");
  CHECK(math::normalize("{5}") == "5");
  CHECK(math::normalize("-.5") == "-0.5");
  CHECK(math::normalize("1,000") == "1000");
  CHECK(math::normalize("(1,000)") == "(1,000)");
  CHECK(math::normalize("1,000,000.5") == "1000000.5");
}

TEST_CASE("math evaluate: values and hostile input", "[math]") {
  CHECK(math::evaluate("1+2*3").value() == Approx(7));
  CHECK(math::evaluate("(1+2)*3").value() == Approx(9));
  CHECK(math::evaluate("\\frac{1}{4}").value() == Approx(0.25));
  CHECK(math::evaluate("-2^2").value() == Approx(-4));
  CHECK(math::evaluate("2^{10}").value() == Approx(1024));
  CHECK_FALSE(math::evaluate("").has_value());
  CHECK_FALSE(math::evaluate("x").has_value());
  CHECK_FALSE(math::evaluate("1+").has_value());
  CHECK_FALSE(math::evaluate("(1").has_value());
  CHECK_FALSE(math::evaluate("1.").has_value());
  CHECK_FALSE(math::evaluate("0^{-1}").has_value());

  const auto t0 = std::chrono::steady_clock::now();
  // huge exponents: rejected (|exponent| > kMaxExponent) or non-finite, never computed for long
  CHECK_FALSE(math::evaluate("2^{99999999999}").has_value());
  CHECK_FALSE(math::evaluate("10^{1000}").has_value());
  CHECK_FALSE(math::evaluate("2^2^2^2^2^2").has_value());  // 2^65536
  CHECK_FALSE(math::evaluate("\\sqrt[99999999]{2}").has_value());
  CHECK_FALSE(math::evaluate(std::string(5000, '9')).has_value());
  CHECK_FALSE(math::equivalent("2^{99999999999}", "2^{99999999998}"));
  // deep nesting: fails at kMaxDepth instead of overflowing the stack
  const std::string huge = std::string(100000, '(') + "1" + std::string(100000, ')');
  CHECK_FALSE(math::evaluate(huge).has_value());  // longer than kMaxAnswerBytes
  CHECK_FALSE(math::equivalent("1", huge));
  const std::string parens = std::string(2000, '(') + "1" + std::string(2000, ')');
  REQUIRE(parens.size() < math::kMaxAnswerBytes);
  CHECK_FALSE(math::evaluate(parens).has_value());
  CHECK_FALSE(math::equivalent("1", parens));
  std::string fracs;
  for (int i = 0; i < 300; i++) fracs += "\\frac{";
  fracs += "1";
  for (int i = 0; i < 300; i++) fracs += "}{2}";
  REQUIRE(fracs.size() < math::kMaxAnswerBytes);
  CHECK_FALSE(math::evaluate(fracs).has_value());
  CHECK_FALSE(math::evaluate(std::string(3000, '-') + "1").has_value());
  CHECK_FALSE(math::evaluate("2" + std::string(3000, '^') + "2").has_value());
  std::string pows = "2";
  for (int i = 0; i < 1000; i++) pows += "^{2";
  pows += std::string(1000, '}');
  REQUIRE(pows.size() < math::kMaxAnswerBytes);
  CHECK_FALSE(math::evaluate(pows).has_value());
  // nesting within the limit still evaluates
  CHECK(math::evaluate(std::string(20, '(') + "1" + std::string(20, ')')).value() == 1);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 2.0);
}

TEST_CASE("math extraction: boxed, fbox, answer tag, </think>", "[math]") {
  CHECK(math::last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}.").value() == "\\frac{1}{2}");
  CHECK(math::last_boxed("\\fbox{7}").value() == "7");
  CHECK(math::last_boxed("$\\boxed 5$ done").value() == "5");
  CHECK(math::last_boxed("\\boxed{3} and \\boxed{4").value() == "3");  // the last one is unbalanced
  CHECK_FALSE(math::last_boxed("\\boxed{}").has_value());
  CHECK_FALSE(math::last_boxed("no answer").has_value());
  CHECK_FALSE(math::last_boxed("\\boxed{{{").has_value());
  CHECK(math::last_tag("<answer>1</answer> <answer> 2 </answer>", "answer").value() == "2");
  CHECK_FALSE(math::last_tag("<answer>1", "answer").has_value());

  math::RewardOptions o;
  CHECK_FALSE(math::extract_answer("\\boxed{1}", o).has_value());  // thinking required, no </think>
  CHECK(math::extract_answer("\\boxed{1}</think> \\boxed{2}", o).value() == "2");
  CHECK(math::extract_answer("</think> <answer>$\\boxed{3}$</answer>", o).value() == "3");
  CHECK(math::extract_answer("</think> <answer>4</answer>", o).value() == "4");
  o.answer_tag = "";
  CHECK_FALSE(math::extract_answer("</think> <answer>4</answer>", o).has_value());
  o.require_think = false;
  CHECK(math::extract_answer("The answer is \\boxed{9}.", o).value() == "9");
  CHECK(math::gold_from_solution("We get $x = \\boxed{\\dfrac{3}{4}}$.") == "\\dfrac{3}{4}");
  CHECK(math::gold_from_solution(" 42 ") == "42");
}

TEST_CASE("math reward: 1, format reward, 0", "[math]") {
  CHECK(math_reward("ok</think> so \\boxed{0.5}", "\\frac{1}{2}") == 1.0);
  CHECK(math_reward("ok</think> so \\boxed{0.4}", "\\frac{1}{2}") == 0.0);
  CHECK(math_reward("ok</think> so \\boxed{0.4}", "\\frac{1}{2}", true, 0.1) == 0.1);
  CHECK(math_reward("ok</think> no answer here", "\\frac{1}{2}", true, 0.1) == 0.0);
  CHECK(math_reward("\\boxed{0.5}", "\\frac{1}{2}", true, 0.1) == 0.0);   // no </think>
  CHECK(math_reward("\\boxed{0.5}", "\\frac{1}{2}", false, 0.1) == 1.0);  // not required
  CHECK(math_reward("</think>\\boxed{1,000}", "1000") == 1.0);
  CHECK(math_reward("</think>\\boxed{(2,1)}", "(1,2)") == 0.0);
}

TEST_CASE("math records and the task", "[math]") {
  using nlohmann::json;
  CHECK(math::item_from_json(json{{"problem", "p"}, {"answer", "\\frac12"}}, "f:1").gold == "\\frac12");
  CHECK(math::item_from_json(json{{"question", "q"}, {"answer", 30}}, "f:1").gold == "30");
  CHECK(math::item_from_json(json{{"question", "q"}, {"answer", 0.5}}, "f:1").gold == "0.5");
  CHECK(math::item_from_json(json{{"problem", "p"}, {"solution", "so \\boxed{7}."}}, "f:1").gold == "7");
  CHECK(math::item_from_json(json{{"problem", "p"}, {"answer", "the \\boxed{8}"}}, "f:1").gold == "8");
  CHECK_THROWS_WITH(math::item_from_json(json{{"answer", "1"}}, "f:3"), Catch::StartsWith("f:3: missing string field \"problem\""));
  CHECK_THROWS_WITH(math::item_from_json(json{{"problem", "p"}}, "f:4"), Catch::StartsWith("f:4: missing field \"answer\""));
  CHECK_THROWS_WITH(math::item_from_json(json{{"problem", "p"}, {"answer", json::array()}}, "f:5"),
                    Catch::Contains("\"answer\" must be a string or a number"));
  CHECK_THROWS_WITH(math::item_from_json(json{{"problem", "p"}, {"answer", " "}}, "f:6"), Catch::Contains("empty gold"));

  TempFile train("train.jsonl",
                 "{\"problem\": \"What is 1/2 + 1/4?\", \"answer\": \"\\\\frac{3}{4}\"}\n"
                 "{\"question\": \"How many?\", \"solution\": \"It is \\\\boxed{12}.\"}\n");
  TempFile bad("bad.jsonl", "{\"problem\": \"p\", \"answer\": \"1\"}\n{\"problem\": 3, \"answer\": \"1\"}\n");
  TaskOptions o;
  o.name = "math";
  o.template_name = "chat_think";
  o.train_path = train.str();
  o.val_path = train.str();
  o.val_size = 0;
  o.format_reward = 0.25;
  auto t = make_task(o);
  CHECK(t->name() == "math");
  CHECK(t->val_size() == 2);
  const Example e0 = t->train_example(0), e1 = t->train_example(3);
  CHECK(e0.prompt == "User: What is 1/2 + 1/4?\n\nAssistant: <think");
  CHECK(t->reward(e0, "x</think> \\boxed{0.75}", {}) == 1.0);
  CHECK(t->reward(e0, "x</think> \\boxed{0.7}", {}) == 0.25);
  CHECK(t->reward(e0, "\\boxed{0.75}", {}) == 0.0);
  CHECK(t->reward(e1, "x</think> $\\boxed{12}$", {}) == 1.0);
  // a record gives back an example with the same reward
  const Example r0 = t->example_from_record(e0.record, "rec");
  CHECK(r0.meta.at("gold") == e0.meta.at("gold"));
  CHECK(t->reward(r0, "x</think> \\boxed{3/4}", {}) == 1.0);
  // no </think> needed with the chat template
  o.template_name = "chat";
  CHECK(make_task(o)->reward(e0, "\\boxed{3/4}", {}) == 1.0);
  // task.answer_prefix ends the prompt and is read before the completion
  o.answer_prefix = "The answer is \\boxed{";
  {
    auto tp = make_task(o);
    const Example p0 = tp->train_example(0);
    CHECK(p0.prompt == "User: What is 1/2 + 1/4?\n\nAssistant:The answer is \\boxed{");
    CHECK(tp->reward(p0, "3/4}.", {}) == 1.0);
    CHECK(tp->reward(p0, "0.7}", {}) == 0.25);
    CHECK(tp->reward(p0, "3/4", {}) == 0.0);  // the box never closes: no answer
    CHECK(tp->reward(tp->example_from_record(p0.record, "rec"), "0.75}", {}) == 1.0);
    o.template_name = "chat_think";
    CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.answer_prefix:"));
    o.template_name = "chat";
  }
  o.answer_prefix.clear();
  // errors
  o.val_path = "";
  o.train_path = bad.str();
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith(bad.str() + ":2: missing string field \"problem\""));
  o.train_path = "";
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.train_path:"));
  o.records_only = true;
  auto scorer = make_task(o);
  CHECK_THROWS_AS(scorer->train_example(0), std::logic_error);
  CHECK(scorer->reward(scorer->example_from_record({{"problem", "p"}, {"answer", "2"}}, "r"), "\\boxed{2}", {}) == 1.0);
}
