#pragma once
// Subcommand registry for the `lowbit` program. Each cmd_*.cpp registers itself with a
// static `lowbit_cli::registration`, so adding a subcommand touches no other file:
//
//   static lowbit_cli::registration reg{"demo", "Compare schemes on a synthetic model",
//     /*order=*/10, [](CLI::App& sub) { ...add options...; return [=]() -> int { ...run... }; }};
//
// The setup function adds options to the subcommand and returns the function that runs it
// (which returns the exit code). Errors thrown as lowbit::error or std::exception are
// printed by main as one line on stderr, with exit code 1.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/error.hpp"

namespace lowbit_cli {

// The program's errors are lowbit::error too (main prints what() as one line); this is the
// program's own shorthand, so the commands need nothing from lowbit::detail.
[[noreturn]] inline void fail(const std::string& what) { throw lowbit::error(what); }

// A flag's value through the library's parser (quant/spec_text.hpp: the one table of names
// per enum), its message prefixed with the flag: "--weights: unknown element format ...".
template <class Parse>
auto parse_flag(const char* flag, const std::string& value, Parse parse) {
  try {
    return parse(value);
  } catch (const lowbit::error& e) {
    fail(std::string(flag) + ": " + e.what());
  }
}

using run_fn = std::function<int()>;
using setup_fn = std::function<run_fn(CLI::App&)>;

struct command {
  std::string name;
  std::string description;
  int order;  // position in --help
  setup_fn setup;
};

inline std::vector<command>& commands() {
  static std::vector<command> list;
  return list;
}

struct registration {
  registration(std::string name, std::string description, int order, setup_fn setup) {
    commands().push_back({std::move(name), std::move(description), order, std::move(setup)});
  }
};

}  // namespace lowbit_cli
