#include "proxy/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "config/digest.h"
#include "config/load.h"
#include "proxy/ctl_client.h"
#include "proxy/handoff_command.h"
#include "proxy/kept_sockets.h"
#include "proxy/run_command.h"
#include "proxy/version.h"
#include "proxy/worker_process.h"
#include "repair/handoff_file.h"

namespace seamless {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitConfigError = 2;  // also usage errors

struct CheckOptions {
  std::string config_path;
  bool print_effective = false;
  int reads_handoff_major = -1;
};

constexpr int kExitCannotRead = 3;

// `seamless check`: validates a config exactly as a starting proxy would, and
// starts nothing. The upgrade preflight (DESIGN.md §2) runs it with the candidate
// binary, so its exit code is the contract: 0 valid, 2 invalid or unreadable.
CLI::App* add_check_command(CLI::App& app, CheckOptions& options) {
  CLI::App* check = app.add_subcommand("check", "Validate a config file and print its digest");
  check->add_option("--config,-c", options.config_path, "Config file (YAML)")->required();
  check->add_flag("--print-effective", options.print_effective,
                  "Print the config with every default filled in, instead of \"ok\"");
  // The upgrade preflight asks whether this binary reads the running one's handoff files.
  check->add_option("--reads-handoff-major", options.reads_handoff_major,
                    "Also fail (exit 3) unless this binary reads handoff format MAJOR.x, and "
                    "list what an upgrade into it may pass on (\"upgrade features: ...\")");
  return check;
}

int run_check(const CheckOptions& options) {
  const Result<config::Config> config = config::load_config_file(options.config_path);
  if (!config) {
    // One error per line, each already naming file:line:column and the key.
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return kExitConfigError;
  }
  const int major = repair::current_handoff_format().major;
  if (options.reads_handoff_major >= 0 && options.reads_handoff_major != major) {
    std::fprintf(stderr, "cannot read handoff format %d.x (this binary reads %d.x)\n",
                 options.reads_handoff_major, major);
    return kExitCannotRead;
  }
  const std::string digest = config::config_digest(*config);
  if (options.print_effective) {
    // Stays valid YAML: the digest goes in a comment.
    std::printf("%s# digest: %s\n", config::canonical_yaml(*config).c_str(), digest.c_str());
  } else {
    std::printf("ok digest %s\n", digest.c_str());
  }
  // For the keeper's upgrade preflight: what an exec into this binary may pass on.
  if (options.reads_handoff_major >= 0) {
    std::printf("upgrade features: %.*s\n", int(proxy::kKeptSocketsFeature.size()),
                proxy::kKeptSocketsFeature.data());
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

// `seamless worker`: what the keeper spawns. Not for people: its fds come from the keeper.
CLI::App* add_worker_command(CLI::App& app, proxy::WorkerProcessArgs& args) {
  CLI::App* worker = app.add_subcommand("worker", "A worker process (spawned by the keeper)");
  worker->group("");  // hidden from --help
  worker->add_option("--control-fd", args.control_fd)->required();
  worker->add_option("--config-fd", args.config_fd)->required();
  worker->add_option("--config-name", args.config_name)->required();
  return worker;
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
  proxy::WorkerProcessArgs worker_args;
  const CLI::App* worker = add_worker_command(app, worker_args);
  proxy::HandoffCommandOptions handoff_options;
  const CLI::App* handoff = proxy::add_handoff_command(app, handoff_options);
  proxy::CtlCommandOptions ctl_options;
  const CLI::App* ctl = proxy::add_ctl_command(app, ctl_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitConfigError;
  }
  if (check->parsed()) return run_check(check_options);
  if (run->parsed()) return proxy::run_command(run_options.config_path);
  if (worker->parsed()) return proxy::run_worker_process(worker_args);
  if (handoff->parsed()) return proxy::run_handoff_command(handoff_options);
  if (ctl->parsed()) return proxy::run_ctl_command(ctl_options);
  std::fputs(app.help().c_str(), stdout);
  return kExitOk;
}

}  // namespace seamless
