// Tasks: countdown parser/reward/generator/loader, gsm8k extraction/reward/loader, toy rewards.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "tasks/countdown.h"
#include "tasks/tasks.h"

using namespace eggroll;
namespace fs = std::filesystem;

namespace {

double cd(const std::string& completion, std::vector<int64_t> nums, int64_t target) {
  return countdown::reward(completion, nums, target);
}
std::string ans(const std::string& e) { return "<think>hmm</think> <answer>" + e + "</answer>"; }

// Brute force: can the numbers (all of them, each once) reach target with + - * /, using
// exact rational arithmetic?
struct Frac {
  long long n, d;  // d > 0
};
long long gcdll(long long a, long long b) {
  a = a < 0 ? -a : a;
  while (b) {
    const long long t = a % b;
    a = b;
    b = t;
  }
  return a;
}
Frac norm(long long n, long long d) {
  if (d < 0) n = -n, d = -d;
  const long long g = gcdll(n, d);
  return g ? Frac{n / g, d / g} : Frac{0, 1};
}
bool solve(std::vector<Frac> v, long long target) {
  if (v.size() == 1) return v[0].d == 1 && v[0].n == target;
  for (size_t i = 0; i < v.size(); ++i)
    for (size_t j = 0; j < v.size(); ++j) {
      if (i == j) continue;
      std::vector<Frac> rest;
      for (size_t k = 0; k < v.size(); ++k)
        if (k != i && k != j) rest.push_back(v[k]);
      const Frac a = v[i], b = v[j];
      std::vector<Frac> cands = {norm(a.n * b.d + b.n * a.d, a.d * b.d),
                                 norm(a.n * b.d - b.n * a.d, a.d * b.d),
                                 norm(a.n * b.n, a.d * b.d)};
      if (b.n != 0) cands.push_back(norm(a.n * b.d, a.d * b.n));
      for (const Frac& c : cands) {
        rest.push_back(c);
        if (solve(rest, target)) return true;
        rest.pop_back();
      }
    }
  return false;
}

struct TempFile {
  fs::path path;
  TempFile(const std::string& name, const std::string& content) {
    path = fs::temp_directory_path() / ("eggroll_test_tasks_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  std::string str() const { return path.string(); }
};

}  // namespace

// ---- countdown parser -----------------------------------------------------------------

TEST_CASE("countdown expression parser", "[tasks][countdown]") {
  auto ok = [](const std::string& s, double v) {
    const auto p = countdown::parse_expression(s);
    INFO(s << " -> " << p.error);
    REQUIRE(p.ok);
    CHECK(p.value == Approx(v));
  };
  auto bad = [](const std::string& s) {
    const auto p = countdown::parse_expression(s);
    INFO(s);
    CHECK_FALSE(p.ok);
    CHECK_FALSE(p.error.empty());
  };
  ok("1+2", 3);
  ok(" ( 1 + 2 ) * 3 ", 9);
  ok("2*3+4", 10);
  ok("2+3*4", 14);
  ok("10-4-3", 3);     // left associative
  ok("100/10/5", 2);   // left associative
  ok("7/2", 3.5);
  ok("-3+5", 2);
  ok("-(3-5)*2", 4);
  ok("+4", 4);
  ok("2*-3", -6);
  ok("\n(1 +\t2)\r\n", 3);
  ok("007", 7);
  ok("((((1))))", 1);
  const auto eq = countdown::parse_expression("(1+2)*3 = 9");
  REQUIRE(eq.ok);
  CHECK(eq.claimed == 9);
  CHECK(eq.numbers == std::vector<int64_t>{1, 2, 3});
  bad("");
  bad("   ");
  bad("1+");
  bad("+");
  bad("(1+2");
  bad("1+2)");
  bad("()");
  bad("1 2");
  bad("1/0");
  bad("5/(3-3)");
  bad("1.5+2");
  bad("2x3");
  bad("2 × 3");        // unicode multiplication sign
  bad("2 ÷ 3");
  bad("１+２");        // full-width digits
  bad("1+2=");
  bad("1+2=3=3");
  bad("= 3");
  bad("a+b");
  bad("eval(1)");
  bad("1e5");
  bad("2**3");  // '*' then '*': unary can't start with '*'
  bad("1234567890123456");  // 16 digits
  bad(std::string("1+2\0", 4));
  // huge values: finite double products are merely wrong answers, overflow is invalid
  ok("99999999999999*9999999999", 99999999999999.0 * 9999999999.0);
  bad("99999999999999999999*9999999999");  // 20-digit literal
  std::string big = "999999999999999";
  for (int i = 0; i < 30; ++i) big += "*999999999999999";
  bad(big);  // overflows to inf
}

TEST_CASE("countdown parser survives deep nesting", "[tasks][countdown]") {
  const std::string deep = std::string(10000, '(') + "1" + std::string(10000, ')');
  const auto p = countdown::parse_expression(deep);
  CHECK_FALSE(p.ok);
  const std::string unary(100000, '-');
  CHECK_FALSE(countdown::parse_expression(unary + "1").ok);
  const std::string open(1000000, '(');
  CHECK_FALSE(countdown::parse_expression(open).ok);
  // depth just inside the limit is fine
  const int d = countdown::kMaxDepth - 1;
  CHECK(countdown::parse_expression(std::string(d, '(') + "1" + std::string(d, ')')).ok);
  CHECK(cd(ans(deep), {1}, 1) == 0.1);
}

// ---- countdown reward -----------------------------------------------------------------

TEST_CASE("countdown reward", "[tasks][countdown]") {
  const std::vector<int64_t> n = {44, 19, 35};
  CHECK(cd(ans("44 + 19 + 35"), n, 98) == 1.0);
  CHECK(cd(ans("(44 + 19) + 35"), n, 98) == 1.0);
  CHECK(cd(ans("35 + 44 + 19 = 98"), n, 98) == 1.0);  // tolerated "= target"
  CHECK(cd(ans("35 + 44 + 19 = 97"), n, 98) == 0.1);  // wrong claimed value
  CHECK(cd(ans("44 + 19 + 35"), n, 97) == 0.1);       // wrong value
  CHECK(cd(ans("44 + 19 + 19 + 16"), n, 98) == 0.1);  // number reused, one missing
  CHECK(cd(ans("44 + 54"), n, 98) == 0.1);            // numbers missing
  CHECK(cd(ans("44 + 19 + 35 + 0"), n, 98) == 0.1);   // extra number
  CHECK(cd(ans("44 + 19 + 35 + 0*1"), n, 98) == 0.1);
  CHECK(cd(ans("44 + 19 + 35 / 0"), n, 98) == 0.1);   // division by zero
  CHECK(cd(ans(""), n, 98) == 0.1);                    // empty answer
  CHECK(cd(ans("   "), n, 98) == 0.1);
  CHECK(cd(ans("ninety-eight"), n, 98) == 0.1);
  CHECK(cd(ans("44 ＋ 19 ＋ 35"), n, 98) == 0.1);     // unicode plus
  CHECK(cd(ans("99999999999999999999*9999999999"), n, 98) == 0.1);
  CHECK(cd("<think>44+19+35</think> no tags", n, 98) == 0.0);
  CHECK(cd("", n, 98) == 0.0);
  CHECK(cd("<answer>44+19+35", n, 98) == 0.0);   // not closed
  CHECK(cd("44+19+35</answer>", n, 98) == 0.0);  // not opened
  CHECK(cd("</answer><answer>44+19+35", n, 98) == 0.0);
  // several tags: the last complete pair counts
  CHECK(cd("<answer>1+2</answer> wait <answer>44+19+35</answer>", n, 98) == 1.0);
  CHECK(cd("<answer>44+19+35</answer> wait <answer>1+2</answer>", n, 98) == 0.1);
  CHECK(cd("<answer>44+19+35</answer> trailing <answer>unclosed", n, 98) == 1.0);
  // the answer may span lines
  CHECK(cd("<answer>\n  44 + 19\n + 35\n</answer>", n, 98) == 1.0);
  // repeated numbers in the problem are a multiset
  CHECK(cd(ans("(5 + 5) * 3"), {5, 3, 5}, 30) == 1.0);
  CHECK(cd(ans("(5 + 3) * 3"), {5, 3, 5}, 24) == 0.1);
  // fractions within 1e-5
  CHECK(cd(ans("(1 / 3) * 3 * 7"), {1, 3, 3, 7}, 7) == 1.0);
  CHECK(cd(ans("6 / 4 + 2 + 2"), {6, 4, 2, 2}, 5) == 0.1);  // 5.5
  // junk around the tags, binary bytes
  CHECK(cd(std::string("\xff\xfe<answer>44+19+35</answer>\x80"), n, 98) == 1.0);
}

// ---- countdown generator --------------------------------------------------------------

TEST_CASE("countdown generator: deterministic, in range, always solvable", "[tasks][countdown]") {
  countdown::GeneratorOptions o;
  std::set<std::string> seen;
  for (uint64_t i = 0; i < 200; ++i) {
    const auto p = countdown::generate(o, 1234, false, i);
    INFO("index " << i << " solution " << p.solution);
    REQUIRE(p.nums.size() >= 3);
    REQUIRE(p.nums.size() <= 4);
    for (int64_t v : p.nums) {
      REQUIRE(v >= 1);
      REQUIRE(v <= 100);
    }
    REQUIRE(p.target >= 100);
    REQUIRE(p.target <= 999);
    CHECK_FALSE(countdown::is_validation_problem(p.nums, p.target));
    // its own solution scores 1.0
    REQUIRE(countdown::reward("<answer>" + p.solution + "</answer>", p.nums, p.target) == 1.0);
    // independent brute-force check
    std::vector<Frac> f;
    for (int64_t v : p.nums) f.push_back({v, 1});
    REQUIRE(solve(f, p.target));
    // deterministic
    const auto q = countdown::generate(o, 1234, false, i);
    REQUIRE(q.nums == p.nums);
    REQUIRE(q.target == p.target);
    std::string key;
    for (int64_t v : p.nums) key += std::to_string(v) + ",";
    seen.insert(key + std::to_string(p.target));
  }
  CHECK(seen.size() > 190);  // varied
  // a different seed gives different problems
  int differ = 0;
  for (uint64_t i = 0; i < 20; ++i)
    differ += countdown::generate(o, 1234, false, i).nums != countdown::generate(o, 99, false, i).nums;
  CHECK(differ >= 18);
  // validation problems come from the other side of the split
  for (uint64_t i = 0; i < 50; ++i) {
    const auto p = countdown::generate(o, 1234, true, i);
    CHECK(countdown::is_validation_problem(p.nums, p.target));
    std::vector<Frac> f;
    for (int64_t v : p.nums) f.push_back({v, 1});
    CHECK(solve(f, p.target));
  }
  // other ranges
  o.min_numbers = o.max_numbers = 4;
  o.min_target = 1;
  o.max_target = 50;
  for (uint64_t i = 0; i < 50; ++i) {
    const auto p = countdown::generate(o, 7, false, i);
    REQUIRE(p.nums.size() == 4);
    REQUIRE(p.target >= 1);
    REQUIRE(p.target <= 50);
    std::vector<Frac> f;
    for (int64_t v : p.nums) f.push_back({v, 1});
    REQUIRE(solve(f, p.target));
  }
  // impossible ranges fail cleanly
  o = countdown::GeneratorOptions{};
  o.max_value = 2;
  o.min_target = 900;
  o.max_target = 999;
  CHECK_THROWS_AS(countdown::generate(o, 1, false, 0), InputError);
}

TEST_CASE("countdown question text", "[tasks][countdown]") {
  countdown::Problem p;
  p.nums = {44, 19, 35};
  p.target = 98;
  CHECK(countdown::question(p) ==
        "Using the numbers [44, 19, 35], create an equation that equals 98. You can use basic "
        "arithmetic operations (+, -, *, /) and each number can only be used once. Show your "
        "work in <think> </think> tags. And return the final answer in <answer> </answer> "
        "tags, for example <answer> (1 + 2) / 3 </answer>.");
}

// ---- countdown task -------------------------------------------------------------------

TEST_CASE("countdown task (generated)", "[tasks][countdown]") {
  TaskOptions o;
  o.name = "countdown";
  o.seed = 5;
  o.val_size = 16;
  const auto t = make_task(o);
  CHECK(t->name() == "countdown");
  const Example a = t->train_example(3), b = t->train_example(3);
  CHECK(a.prompt == b.prompt);
  CHECK(a.prompt.rfind("User: Using the numbers [", 0) == 0);
  CHECK(a.prompt.ends_with(". Show your work in <think> </think> tags. And return the final "
                           "answer in <answer> </answer> tags, for example <answer> (1 + 2) / "
                           "3 </answer>.\n\nAssistant:"));
  CHECK(a.meta.at("index") == 3);
  CHECK(a.meta.at("split") == "train");
  const auto nums = a.meta.at("nums").get<std::vector<int64_t>>();
  const int64_t target = a.meta.at("target").get<int64_t>();
  const std::string sol = a.meta.at("solution").get<std::string>();
  CHECK(t->reward(a, "<think>...</think><answer>" + sol + "</answer>", {}) == 1.0);
  CHECK(t->reward(a, "<answer>1</answer>", {}) == 0.1);
  CHECK(t->reward(a, "nothing", {}) == 0.0);
  (void)nums;
  (void)target;
  REQUIRE(t->val_size() == 16);
  std::set<std::string> val_prompts;
  for (size_t i = 0; i < 16; ++i) {
    const Example v = t->val_example(i);
    CHECK(v.meta.at("split") == "val");
    val_prompts.insert(v.prompt);
  }
  for (uint64_t i = 0; i < 500; ++i) CHECK(val_prompts.count(t->train_example(i).prompt) == 0);
  CHECK_THROWS_AS(t->val_example(16), std::out_of_range);
  // templates
  o.template_name = "chat_think";
  CHECK(make_task(o)->train_example(3).prompt == a.prompt + " <think");
  o.template_name = "raw";
  CHECK(make_task(o)->train_example(3).prompt.rfind("Using the numbers", 0) == 0);
  o.template_name = "llama";
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.template:"));
  o.template_name = "";
  o.min_numbers = 1;
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.min_numbers:"));
  o.min_numbers = 3;
  o.max_numbers = 2;
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.max_numbers:"));
  o.max_numbers = 4;
  o.min_target = 5000;
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.max_target:"));
}

TEST_CASE("countdown JSONL loader", "[tasks][countdown]") {
  TempFile good("cd_good.jsonl",
                "\xEF\xBB\xBF{\"nums\": [44, 19, 35], \"target\": 98}\r\n"
                "\n"
                "{\"target\": 24, \"nums\": [3, 8, 1.0], \"extra\": \"ignored\"}\n");
  const auto probs = countdown::load_jsonl(good.str());
  REQUIRE(probs.size() == 2);
  CHECK(probs[0].nums == std::vector<int64_t>{44, 19, 35});
  CHECK(probs[0].target == 98);
  CHECK(probs[1].nums == std::vector<int64_t>{3, 8, 1});
  CHECK(probs[1].target == 24);

  TaskOptions o;
  o.name = "countdown";
  o.train_path = good.str();
  auto t = make_task(o);
  CHECK(t->train_example(0).meta.at("target") == 98);
  CHECK(t->train_example(1).meta.at("target") == 24);
  CHECK(t->train_example(2).meta.at("target") == 98);  // cycles
  CHECK(t->train_example(3).meta.at("index") == 3);
  CHECK(t->val_size() == 0);  // no val file
  CHECK(t->reward(t->train_example(1), "<answer>3*8*1</answer>", {}) == 1.0);
  o.val_path = good.str();
  o.val_size = 0;
  CHECK(make_task(o)->val_size() == 2);
  o.val_size = 1;
  t = make_task(o);
  CHECK(t->val_size() == 1);
  CHECK(t->val_example(0).meta.at("target") == 98);

  auto expect_error = [](const std::string& content, const std::string& what) {
    TempFile f("cd_bad.jsonl", content);
    INFO(content);
    try {
      countdown::load_jsonl(f.str());
      FAIL("no error");
    } catch (const InputError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.rfind(f.str() + what, 0) == 0);
    }
  };
  const std::string ok_line = "{\"nums\": [1, 2, 3], \"target\": 6}\n";
  expect_error(ok_line + "{\"nums\": [1, 2], \"target\": 3\n", ":2: invalid JSON");
  expect_error(ok_line + ok_line + "[1, 2]\n", ":3: expected a JSON object");
  expect_error("{\"target\": 3}\n", ":1: \"nums\"");
  expect_error("{\"nums\": [], \"target\": 3}\n", ":1: \"nums\"");
  expect_error("{\"nums\": [1, \"2\"], \"target\": 3}\n", ":1: \"nums\"");
  expect_error("{\"nums\": [1, -2], \"target\": 3}\n", ":1: \"nums\"");
  expect_error("{\"nums\": [1, 2.5], \"target\": 3}\n", ":1: \"nums\"");
  expect_error("{\"nums\": [1, 2]}\n", ":1: missing \"target\"");
  expect_error("{\"nums\": [1, 2], \"target\": \"3\"}\n", ":1: \"target\"");
  expect_error("{\"nums\": [1, 2], \"target\": 1e300}\n", ":1: \"target\"");
  expect_error("\n\n", ": no countdown problems");
  expect_error("garbage\xff\n", ":1: invalid JSON");
  CHECK_THROWS_WITH(countdown::load_jsonl("/nonexistent/x.jsonl"),
                    Catch::StartsWith("/nonexistent/x.jsonl: cannot open"));
  o.train_path = "/nonexistent/x.jsonl";
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("/nonexistent/x.jsonl:"));
}

// ---- gsm8k ----------------------------------------------------------------------------

TEST_CASE("gsm8k answer extraction (reference regex)", "[tasks][gsm8k]") {
  auto ex = [](const std::string& s) { return gsm8k::extract_predicted_answer(s); };
  CHECK(ex("The answer is 42") == "42");
  CHECK(ex("The answer is 42.") == "42");
  CHECK(ex("costs $1,234.") == "1234");
  CHECK(ex("costs $1,234.50") == "1234.50");
  CHECK(ex("so -7") == "-7");
  CHECK(ex("so -72") == "-72");
  CHECK(ex("x = 5") == "5");
  CHECK(ex("first 3 then 18 apples") == "18");
  CHECK(ex("3-4") == "-4");   // "3" then "-4"
  CHECK(ex("3--4") == "-4");
  CHECK(ex("12-34") == "-34");
  CHECK(ex("-$5") == "-5");    // alternative 1: "-" + "$5"
  CHECK(ex("- 5") == "5");
  CHECK(ex("wait...") == "..");  // "..." matches the first alternative; one '.' removed
  CHECK(ex("1.5.") == "1.5");
  CHECK(ex("5..") == "5.");     // only one trailing '.' is removed
  CHECK(ex("$$") == "");
  CHECK(ex("a,b") == std::nullopt);
  CHECK(ex("") == std::nullopt);
  CHECK(ex("no numbers here") == std::nullopt);
  CHECK(ex("#### 72") == "72");
  CHECK(ex("１２") == std::nullopt);  // full-width digits are not [0-9]
  CHECK(ex(std::string(100000, '9')) == std::string(100000, '9'));
}

TEST_CASE("gsm8k gold answer and reward", "[tasks][gsm8k]") {
  CHECK(gsm8k::gold_answer("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72") == "72");
  CHECK(gsm8k::gold_answer("a #### b #### 1,000 ") == "1000");
  CHECK(gsm8k::gold_answer("  18\n") == "18");
  CHECK(gsm8k::reward("<think> 48/2 = 24 </think> The answer is 72.", "72") == 1.0);
  CHECK(gsm8k::reward(" 48/2 = 24 ... so 72", "72") == 0.0);  // no </think>
  CHECK(gsm8k::reward("</think> 71", "72") == 0.0);
  CHECK(gsm8k::reward("</think> $72", "72") == 1.0);
  CHECK(gsm8k::reward("</think> 72 apples, 3 pears", "72") == 0.0);  // last number counts
  CHECK(gsm8k::reward("72 </think>", "72") == 0.0);                  // nothing after
  // the FIRST </think> starts the answer region (reference: str.find)
  CHECK(gsm8k::reward("a </think> 72 </think> 5", "72") == 0.0);
  CHECK(gsm8k::reward("a </think> 5 </think> 72", "72") == 1.0);
  CHECK(gsm8k::reward("</think>", "72") == 0.0);
  CHECK(gsm8k::reward("", "72") == 0.0);
  CHECK(gsm8k::reward("</think> 1,000", "1000") == 1.0);
  CHECK(gsm8k::reward("</think> -3", "-3") == 1.0);
}

TEST_CASE("gsm8k task and loader", "[tasks][gsm8k]") {
  TempFile train("gsm_train.jsonl",
                 "{\"question\": \"Q one?\", \"answer\": \"work\\n#### 72\"}\n"
                 "{\"question\": \"Q two?\", \"answer\": \"#### 1,000\"}\n");
  TempFile val("gsm_val.jsonl", "{\"question\": \"V?\", \"answer\": \"#### 5\"}\n");
  TaskOptions o;
  o.name = "gsm8k";
  o.train_path = train.str();
  auto t = make_task(o);
  CHECK(t->name() == "gsm8k");
  const Example e = t->train_example(0);
  CHECK(e.prompt == "User: Q one?\n\nAssistant: <think");
  CHECK(e.meta.at("gold") == "72");
  CHECK(t->train_example(1).meta.at("gold") == "1000");
  CHECK(t->train_example(5).prompt == "User: Q two?\n\nAssistant: <think");
  CHECK(t->val_size() == 0);
  CHECK(t->reward(e, ">\nthinking</think> It is 72.", {}) == 1.0);
  CHECK(t->reward(e, ">\nthinking It is 72.", {}) == 0.0);
  o.val_path = val.str();
  o.template_name = "chat";
  t = make_task(o);
  REQUIRE(t->val_size() == 1);
  CHECK(t->val_example(0).prompt == "User: V?\n\nAssistant:");
  CHECK(t->val_example(0).meta.at("gold") == "5");
  CHECK_THROWS_AS(t->val_example(1), std::out_of_range);

  o = TaskOptions{};
  o.name = "gsm8k";
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.train_path:"));
  auto expect_error = [&](const std::string& content, const std::string& what) {
    TempFile f("gsm_bad.jsonl", content);
    o.train_path = f.str();
    INFO(content);
    try {
      make_task(o);
      FAIL("no error");
    } catch (const InputError& err) {
      const std::string msg = err.what();
      INFO(msg);
      CHECK(msg.rfind(f.str() + what, 0) == 0);
    }
  };
  expect_error("{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": 3, \"answer\": \"#### 1\"}\n",
               ":2: missing string field \"question\"");
  expect_error("{\"question\": \"q\"}\n", ":1: missing string field \"answer\"");
  expect_error("{\"question\": \"q\", \"answer\": \"####  \"}\n", ":1: empty gold answer");
  expect_error("{\"question\": \"q\", \"answer\": \"#### 1\"}\n{oops}\n", ":2: invalid JSON");
  expect_error("", ": no gsm8k examples");
}

// ---- toy tasks ------------------------------------------------------------------------

TEST_CASE("toy rewards", "[tasks][toy]") {
  using V = std::vector<int32_t>;
  CHECK(toy::digits("a1b22c333") == 6.0);
  CHECK(toy::digits("") == 0.0);
  CHECK(toy::digits("٣ no ascii digits") == 0.0);
  CHECK(toy::fastzero(V{0, 5, 6}) == 0.0);
  CHECK(toy::fastzero(V{5, 6, 0, 0}) == -2.0);
  CHECK(toy::fastzero(V{5, 6, 7}) == -6.0);
  CHECK(toy::fastzero(V{}) == 0.0);
  CHECK(toy::reptok(V{1, 2, 2, 3, 2, 1}) == 3.0);
  CHECK(toy::reptok(V{7}) == 1.0);
  CHECK(toy::reptok(V{}) == 0.0);
  CHECK(toy::uniquetok(V{1, 2, 2, 3, 2, 1}) == 3.0);
  CHECK(toy::uniquetok(V{0, 0, 0}) == 1.0);
  CHECK(toy::uniquetok(V{}) == 0.0);

  for (const char* name : {"digits", "fastzero", "reptok", "uniquetok"}) {
    TaskOptions o;
    o.name = name;
    o.val_size = 4;
    const auto t = make_task(o);
    CHECK(t->name() == name);
    CHECK(t->train_example(17).prompt == "");
    CHECK(t->train_example(17).meta.at("index") == 17);
    CHECK(t->val_size() == 4);
    CHECK(t->val_example(3).meta.at("split") == "val");
  }
  TaskOptions o;
  o.name = "fastzero";
  const V toks = {3, 0};
  CHECK(make_task(o)->reward(Example{}, "x", toks) == -1.0);
  o.name = "digits";
  CHECK(make_task(o)->reward(Example{}, "12", toks) == 2.0);
  o.toy_prompt = "Say numbers:";
  o.template_name = "chat";
  CHECK(make_task(o)->train_example(0).prompt == "User: Say numbers:\n\nAssistant:");
  o.name = "nope";
  CHECK_THROWS_WITH(make_task(o), Catch::StartsWith("task.name: unknown task 'nope'"));
}
