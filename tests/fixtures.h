#pragma once
// Paths and readers for the shared fixtures (../shared/fixtures relative to the repo root).
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"

namespace eggroll::test {

inline std::string fixture(const std::string& rel) { return std::string(EGGROLL_SOURCE_DIR) + "/../shared/fixtures/" + rel; }

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(f);
}

inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  f.seekg(0, std::ios::end);
  std::vector<float> v(size_t(f.tellg()) / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * 4));
  return v;
}

// A fresh directory for this test process ("<tmp>/eggroll_<tag>_<pid>"), removed at exit.
inline const std::filesystem::path& temp_root(const std::string& tag) {
  struct Root {
    std::filesystem::path path;
    explicit Root(const std::string& t)
        : path(std::filesystem::temp_directory_path() / ("eggroll_" + t + "_" + std::to_string(::getpid()))) {
      std::filesystem::remove_all(path);
      std::filesystem::create_directories(path);
    }
    ~Root() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Root root(tag);
  return root.path;
}

// The message of the InputError that f() throws; "(no InputError)" when it throws none.
template <class F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// A whole file as bytes ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Number of non-empty lines of a text file.
inline int count_lines(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::string l;
  int n = 0;
  while (std::getline(f, l)) n += !l.empty();
  return n;
}

inline const std::vector<std::string>& rwkv_fixtures() {
  static const std::vector<std::string> names = {"tiny-rwkv7-834k", "rand-l3-d256-v1024"};
  return names;
}

}  // namespace eggroll::test
