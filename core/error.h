#pragma once
// Errors the user can act on. An InputError means bad input (file, flag, config value):
// the command line prints its message on one line and exits with status 2.
#include <stdexcept>
#include <string>
#include <string_view>

namespace eggroll {

struct InputError : std::runtime_error {
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

// Throws InputError("<where>: <what>") when cond is false.
inline void require(bool cond, const std::string& where, const std::string& what) {
  if (!cond) throw InputError(where + ": " + what);
}

// `s` for an error message: printable ASCII kept, other bytes as \xNN, cut after `max` bytes ("...").
std::string printable(std::string_view s, size_t max = 200);

}  // namespace eggroll
