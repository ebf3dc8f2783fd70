// eggroll command line.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/error.h"
#include "app/commands.h"

namespace {

// Bad input (a flag, a file, a config value): one line on stderr, exit status 2.
int bad_input(std::string msg) {
  for (char& ch : msg)
    if (ch == '\n') ch = ' ';
  fmt::print(stderr, "eggroll: error: {}\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"eggroll: fine-tune RWKV-7 language models with EGGROLL (low-rank evolution strategies)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  eggroll::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return bad_input(e.what());
  } catch (const eggroll::InputError& e) {
    return bad_input(e.what());
  } catch (const eggroll::CommTimeout& e) {
    // a lost or stuck rank (the message names it): the job failed, resubmit it to resume
    fmt::print(stderr, "eggroll: error: {}\n", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "eggroll: error: out of memory\n");
    return 3;
  } catch (const std::exception& e) {
    fmt::print(stderr, "eggroll: internal error: {}\n", e.what());
    return 1;
  }
  return eggroll::command_status();
}
