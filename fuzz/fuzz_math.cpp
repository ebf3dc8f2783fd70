// libFuzzer target: the math task's answer extraction, normalisation, evaluator and equivalence
// (tasks/math.h) on arbitrary bytes. The input is "<gold>\x01<completion>" (without \x01: the
// gold answer is 1/2 and the whole input is the completion). Nothing may throw, crash, hang
// (libFuzzer -timeout) or overflow the stack; an evaluated value is finite; a reward is one of
// 0, 1 and the format reward; an answer is equivalent to itself.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tasks/math.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace m = eggroll::math;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\x01');
  const std::string_view gold = cut == std::string_view::npos ? std::string_view("\\frac{1}{2}") : in.substr(0, cut);
  const std::string_view completion = cut == std::string_view::npos ? in : in.substr(cut + 1);

  m::RewardOptions o;
  o.format_reward = 0.25;
  for (const bool think : {true, false}) {
    o.require_think = think;
    const double r = m::reward(completion, gold, o);
    if (r != 0.0 && r != 1.0 && r != 0.25) __builtin_trap();
  }
  for (const std::string_view s : {gold, completion}) {
    const std::string n = m::normalize(s);
    if (const auto v = m::evaluate(n); v && !std::isfinite(*v)) __builtin_trap();
    if (!n.empty() && !m::equivalent(s, s)) __builtin_trap();
    (void)m::last_boxed(s);
    (void)m::last_tag(s, "answer");
  }
  (void)m::equivalent(gold, completion);
  return 0;
}
