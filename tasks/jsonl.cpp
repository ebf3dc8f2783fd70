#include "tasks/jsonl.h"

#include <fstream>
#include <iostream>

#include "core/error.h"

namespace eggroll {

std::string_view trim_blanks(std::string_view s) {
  auto blank = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

bool parse_jsonl_line(std::string& line, const std::string& where, nlohmann::json& out) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.find_first_not_of(" \t\r\n") == std::string::npos) return false;
  try {
    out = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(where + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  if (!out.is_object()) throw InputError(where + ": expected a JSON object");
  return true;
}

void read_jsonl(const std::string& path,
                const std::function<void(const nlohmann::json&, const std::string&)>& fn) {
  std::ifstream file;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) throw InputError(path + ": cannot open file");
  }
  std::istream& in = path == "-" ? std::cin : file;
  const std::string name = path == "-" ? "<stdin>" : path;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    const std::string where = name + ":" + std::to_string(line_no);
    nlohmann::json j;
    if (!parse_jsonl_line(line, where, j)) continue;
    try {
      fn(j, where);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(where + ": " + std::string(e.what()));
    }
  }
  if (in.bad()) throw InputError(name + ": read error");
}

}  // namespace eggroll
