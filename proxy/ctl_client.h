// `seamless ctl status|reload|upgrade`: asks the running keeper over its control socket
// (<handoff.dir>/ctl.sock, protocol in ctl_server.h) and waits for the outcome. Exit
// 0 only when the keeper answered "ok"; 1 for an "error" answer, no answer in time, or
// no keeper; 2 for a usage error.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/result.h"

namespace CLI {
class App;
}

namespace seamless::proxy {

struct CtlReply {
  bool ok = false;
  std::string text;  // the whole answer as the keeper sent it, "ok ..." or "error ..."
};

// Sends one request line and reads the answer up to the keeper's close, all within
// `timeout`. An Error when there is no answer (no socket, nobody listening, timeout,
// closed without a word).
Result<CtlReply> ctl_request(const std::string& socket_path, std::string_view request,
                             std::chrono::milliseconds timeout);

// The control socket of the instance configured in `config_path`. A config that does
// not validate is still searched for handoff.dir: hearing why is what `ctl reload`
// after a bad edit is for.
Result<std::string> ctl_socket_from_config(const std::string& config_path);

struct CtlCommandOptions {
  std::string action;  // status | reload | upgrade
  std::string config_path = "/etc/seamless/seamless.yaml";
  std::string socket_path;
  std::string timeout = "60s";
};

CLI::App* add_ctl_command(CLI::App& app, CtlCommandOptions& options);
int run_ctl_command(const CtlCommandOptions& options);

}  // namespace seamless::proxy
