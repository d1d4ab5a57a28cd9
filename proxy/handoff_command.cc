#include "proxy/handoff_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "proxy/handoff_inspect.h"

namespace seamless::proxy {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitUnreadable = 1;

// The error must stay one line whatever the path or the file contained.
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

}  // namespace

CLI::App* add_handoff_command(CLI::App& app, HandoffCommandOptions& options) {
  CLI::App* handoff = app.add_subcommand("handoff", "Look at handoff files");
  handoff->require_subcommand(1);
  CLI::App* inspect =
      handoff->add_subcommand("inspect", "Describe a handoff file (payload hidden by default)");
  inspect->add_option("FILE", options.inspect_path, "The handoff file")->required();
  inspect->add_flag("--json", options.json, "Print one JSON document instead of text");
  inspect->add_flag("--payload", options.payload,
                    "Include queue contents (hex dump; base64 in JSON)");
  return handoff;
}

int run_handoff_command(const HandoffCommandOptions& options) {
  const InspectOptions inspect{.json = options.json, .payload = options.payload};
  const Status status = inspect_handoff_file(options.inspect_path, inspect, std::cout);
  std::cout.flush();
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", one_line(status.error().message).c_str());
    return kExitUnreadable;
  }
  return kExitOk;
}

}  // namespace seamless::proxy
