#include "proxy/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "config/digest.h"
#include "config/load.h"
#include "proxy/handoff_command.h"
#include "proxy/run_command.h"
#include "proxy/version.h"

namespace seamless {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitConfigError = 2;  // also usage errors

struct CheckOptions {
  std::string config_path;
  bool print_effective = false;
};

// `seamless check`: validates a config exactly as a starting proxy would, and
// starts nothing. The upgrade preflight (DESIGN.md §2) runs it with the candidate
// binary, so its exit code is the contract: 0 valid, 2 invalid or unreadable.
CLI::App* add_check_command(CLI::App& app, CheckOptions& options) {
  CLI::App* check = app.add_subcommand("check", "Validate a config file and print its digest");
  check->add_option("--config,-c", options.config_path, "Config file (YAML)")->required();
  check->add_flag("--print-effective", options.print_effective,
                  "Print the config with every default filled in, instead of \"ok\"");
  return check;
}

int run_check(const CheckOptions& options) {
  const Result<config::Config> config = config::load_config_file(options.config_path);
  if (!config) {
    // One error per line, each already naming file:line:column and the key.
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return kExitConfigError;
  }
  const std::string digest = config::config_digest(*config);
  if (options.print_effective) {
    // Stays valid YAML: the digest goes in a comment.
    std::printf("%s# digest: %s\n", config::canonical_yaml(*config).c_str(), digest.c_str());
  } else {
    std::printf("ok digest %s\n", digest.c_str());
  }
  return kExitOk;
}

struct RunOptions {
  std::string config_path;
};

// `seamless run`: the proxy itself, in the foreground, until SIGTERM or SIGINT.
CLI::App* add_run_command(CLI::App& app, RunOptions& options) {
  CLI::App* run = app.add_subcommand("run", "Run the proxy (until SIGTERM or SIGINT)");
  run->add_option("--config,-c", options.config_path, "Config file (YAML)")->required();
  return run;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"seamless: a TCP proxy that upgrades, reloads and restarts without dropping a byte"};
  app.set_version_flag("--version,-V", std::string("seamless ") + kVersion);
  app.require_subcommand(0, 1);
  CheckOptions check_options;
  const CLI::App* check = add_check_command(app, check_options);
  RunOptions run_options;
  const CLI::App* run = add_run_command(app, run_options);
  proxy::HandoffCommandOptions handoff_options;
  const CLI::App* handoff = proxy::add_handoff_command(app, handoff_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitConfigError;
  }
  if (check->parsed()) return run_check(check_options);
  if (run->parsed()) return proxy::run_command(run_options.config_path);
  if (handoff->parsed()) return proxy::run_handoff_command(handoff_options);
  std::fputs(app.help().c_str(), stdout);
  return kExitOk;
}

}  // namespace seamless
