#include "proxy/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "proxy/version.h"

namespace seamless {

int run_cli(int argc, char** argv) {
  CLI::App app{"seamless: a TCP proxy that upgrades, reloads and restarts without dropping a byte"};
  app.set_version_flag("--version,-V", std::string("seamless ") + kVersion);
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  return 0;
}

}  // namespace seamless
