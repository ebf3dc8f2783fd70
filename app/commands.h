#pragma once
// Registration of the command-line subcommands (each command's code lives in app/cmd_*.cpp).
#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace eggroll {

void register_commands(CLI::App& app);
int command_status();           // exit status set by the command that ran
void set_command_status(int s);

// Shared parsing helpers for flags: throw InputError naming the flag.
std::vector<int32_t> parse_token_list(const std::string& flag, const std::string& text);
std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& text);

}  // namespace eggroll
