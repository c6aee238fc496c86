// The `lowbit` command-line program: quantize, inspect, compare and evaluate models, and
// run the built-in demo. Subcommands live one per file in cmd_*.cpp (see registry.hpp).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>

#include "lowbit/version.hpp"
#include "registry.hpp"

int main(int argc, char** argv) {
  CLI::App app{"lowbit " LOWBIT_VERSION_STRING
               ": quantize LLM weights and activations, and run the quantized kernels"};
  app.set_version_flag("--version", LOWBIT_VERSION_STRING);
  app.require_subcommand(0, 1);

  auto& cmds = lowbit_cli::commands();
  std::stable_sort(cmds.begin(), cmds.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  std::map<CLI::App*, lowbit_cli::run_fn> runners;
  try {
    for (auto& c : cmds) {
      CLI::App* sub = app.add_subcommand(c.name, c.description);
      runners[sub] = c.setup(*sub);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: internal error while setting up commands: %s\n", e.what());
    return 2;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
    // No subcommand: print help. scripts/demo.sh runs `lowbit demo` explicitly.
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  }
}
