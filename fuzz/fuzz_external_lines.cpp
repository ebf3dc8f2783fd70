// libFuzzer target: the external reward process's answer reader (tasks/external.h: LineReader
// and parse_reward_line) on arbitrary bytes, fed in chunks whose sizes come from the input.
// Nothing may throw or crash; a parsed reward is finite; the reader never returns a line longer
// than kMaxLineBytes and keeps every byte it was given (no line is lost or invented).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tasks/external.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace x = eggroll::external;
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  x::LineReader r;
  std::string joined;
  for (size_t at = 0; at < in.size(); at += chunk) {
    r.feed(in.substr(at, chunk));
    while (auto line = r.next()) {
      if (line->size() > x::kMaxLineBytes) __builtin_trap();
      std::string why;
      if (const auto v = x::parse_reward_line(*line, &why); v && !std::isfinite(*v)) __builtin_trap();
      joined += *line;
      joined += '\n';
    }
  }
  if (r.too_long()) return 0;
  // every complete line came back, in order (a '\r' before a '\n' is dropped)
  std::string want;
  const size_t last_nl = in.rfind('\n');
  if (last_nl != std::string_view::npos) {
    size_t start = 0;
    for (size_t e = in.find('\n'); e != std::string_view::npos && e <= last_nl; e = in.find('\n', start)) {
      std::string_view l = in.substr(start, e - start);
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      want += l;
      want += '\n';
      start = e + 1;
    }
  }
  if (joined != want) __builtin_trap();
  return 0;
}
