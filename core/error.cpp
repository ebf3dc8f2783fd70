#include "core/error.h"

#include <cstdio>

namespace eggroll {

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (unsigned char ch : s.substr(0, max)) {
    if (ch >= 0x20 && ch < 0x7f) {
      out += char(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace eggroll
