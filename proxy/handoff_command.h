// `seamless handoff ...`: commands about handoff files. Today only
// `seamless handoff inspect FILE [--json] [--payload]` (handoff_inspect.h).
// Exit codes as the rest of the CLI: 0 success, 1 the file is unreadable, corrupt,
// truncated or of a newer major format (one line on stderr naming the file and the
// problem), 2 usage errors (CLI11 reports those before run_handoff_command).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace seamless::proxy {

struct HandoffCommandOptions {
  std::string inspect_path;
  bool json = false;
  bool payload = false;
};

// Adds the `handoff` subcommand group to `app`; returns it so the caller can test
// parsed() and then call run_handoff_command.
CLI::App* add_handoff_command(CLI::App& app, HandoffCommandOptions& options);

int run_handoff_command(const HandoffCommandOptions& options);

}  // namespace seamless::proxy
