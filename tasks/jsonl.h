#pragma once
// JSONL reading shared by every task's data loader (tasks/tasks.cpp, tasks/countdown.cpp,
// tasks/math.cpp) and by `eggroll score`. A leaf header: it includes no other task header.
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace eggroll {

// Calls fn(object, "<path>:<line>") for every non-blank line of a JSONL file; each line must
// be one JSON object (InputError "<path>:<line>: ..." otherwise). A UTF-8 BOM and CRLF line
// ends are accepted. InputError "<path>: cannot open ..." when the file cannot be read.
// "-" reads standard input.
void read_jsonl(const std::string& path,
                const std::function<void(const nlohmann::json&, const std::string&)>& fn);

// Parses one JSONL line (a JSON object) as read_jsonl does; false for a blank line.
// InputError "<where>: ..." when the line is not one JSON object.
bool parse_jsonl_line(std::string& line, const std::string& where, nlohmann::json& out);

// `s` without leading and trailing ASCII whitespace.
std::string_view trim_blanks(std::string_view s);

}  // namespace eggroll
