// The `seamless` command line: parses arguments and dispatches to a subcommand.
// Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
#pragma once

namespace seamless {

int run_cli(int argc, char** argv);

}  // namespace seamless
