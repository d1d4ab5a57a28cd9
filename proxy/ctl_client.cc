// `seamless ctl`. See ctl_client.h.
#include "proxy/ctl_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>

#include "base/unique_fd.h"
#include "config/duration.h"
#include "config/load.h"
#include "proxy/ctl_server.h"

namespace seamless::proxy {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxReply = 1 << 20;
constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

Error connect_error(const std::string& path, int err) {
  switch (err) {
    case ENOENT: return Error{err, "is seamless running? no control socket at " + path};
    case ECONNREFUSED:
      return Error{err, "is seamless running? nothing listens on " + path +
                            " (a stale socket file)"};
    case EACCES:
      return Error{err, "permission denied on " + path +
                            " (the socket is 0600: run as the user seamless runs as)"};
    default: return Error::from_errno("connect " + path, err);
  }
}

// Milliseconds left until `deadline`, at least 0.
int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? int(std::min<int64_t>(left, 1 << 30)) : 0;
}

// Waits for `events` on `fd` until `deadline`: false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;  // let the next call report the error
  }
}

Result<UniqueFd> connect_unix(const std::string& path, Clock::time_point deadline) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return Error::logic("control socket path too long: " + path);
  }
  path.copy(address.sun_path, path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("socket");
  // A unix connect completes at once or, with the keeper's backlog full, fails with
  // EAGAIN: then try again until the deadline.
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
      return fd;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN || remaining_ms(deadline) == 0) return connect_error(path, errno);
    ::poll(nullptr, 0, 10);
  }
}

}  // namespace

Result<CtlReply> ctl_request(const std::string& socket_path, std::string_view request,
                             std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  Result<UniqueFd> fd = connect_unix(socket_path, deadline);
  if (!fd) return fd.error();
  const std::string line = std::string(request) + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::send(fd->get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += size_t(n);
    } else if (errno == EAGAIN) {
      if (!wait_for(fd->get(), POLLOUT, deadline)) break;
    } else if (errno != EINTR) {
      return Error::from_errno("send to " + socket_path);
    }
  }
  std::string reply;
  const std::string no_answer = "no answer from seamless within " + config::format_duration(timeout) +
                                "; the action may still be running (see its log)";
  if (sent < line.size()) return Error{ETIMEDOUT, no_answer};
  for (;;) {
    if (!wait_for(fd->get(), POLLIN, deadline)) return Error{ETIMEDOUT, no_answer};
    char buf[4096];
    const ssize_t n = ::recv(fd->get(), buf, sizeof(buf), 0);
    if (n > 0) {
      reply.append(buf, size_t(n));
      if (reply.size() > kMaxReply) return Error::logic("answer longer than 1 MiB: refused");
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno == ECONNRESET && !reply.empty()) break;
    return Error::from_errno("receive from " + socket_path);
  }
  if (reply.empty()) {
    return Error::logic("seamless closed the control connection without an answer (did it "
                        "exit, or exec a binary without `ctl`?)");
  }
  const auto starts_with_word = [&](std::string_view word) {
    return reply.compare(0, word.size(), word) == 0 &&
           (reply.size() == word.size() || reply[word.size()] == ' ' ||
            reply[word.size()] == '\n');
  };
  if (starts_with_word("ok")) return CtlReply{true, reply};
  if (starts_with_word("error")) return CtlReply{false, reply};
  return Error::logic("unexpected answer from seamless: " + reply.substr(0, 80));
}

Result<std::string> ctl_socket_from_config(const std::string& config_path) {
  const Result<config::Config> config = config::load_config_file(config_path);
  if (config) return ctl_socket_path(config->handoff.dir);
  if (config.error().code != 0) {
    return Error{config.error().code, config.error().message + " (or pass --socket PATH)"};
  }
  // It does not validate; the keeper will say why. Only handoff.dir matters here.
  try {
    const YAML::Node root = YAML::LoadFile(config_path);
    const YAML::Node handoff = root.IsMap() ? root["handoff"] : YAML::Node();
    const YAML::Node dir = handoff.IsMap() ? handoff["dir"] : YAML::Node();
    if (dir.IsScalar()) return ctl_socket_path(dir.as<std::string>());
    return ctl_socket_path(config::Handoff{}.dir);
  } catch (const YAML::Exception& e) {
    return Error::logic("cannot find handoff.dir in " + config_path + ": " + e.what() +
                        " (pass --socket PATH)");
  }
}

CLI::App* add_ctl_command(CLI::App& app, CtlCommandOptions& options) {
  CLI::App* ctl = app.add_subcommand(
      "ctl", "Ask the running seamless: status, or reload/upgrade and wait for the outcome");
  ctl->add_option("action", options.action, "status | reload | upgrade")
      ->required()
      ->check(CLI::IsMember({"status", "reload", "upgrade"}));
  CLI::Option* config =
      ctl->add_option("--config,-c", options.config_path,
                      "Config of the running instance; its handoff.dir holds ctl.sock")
          ->capture_default_str();
  ctl->add_option("--socket,-s", options.socket_path, "The control socket itself")
      ->excludes(config);
  ctl->add_option("--timeout", options.timeout, "Give up waiting after this long (250ms, 5s, 2m)")
      ->capture_default_str();
  return ctl;
}

int run_ctl_command(const CtlCommandOptions& options) {
  const Result<std::chrono::milliseconds> timeout = config::parse_duration(options.timeout);
  if (!timeout) {
    std::fprintf(stderr, "seamless ctl: --timeout: %s\n", timeout.error().message.c_str());
    return kExitUsage;
  }
  Result<std::string> socket_path = options.socket_path.empty()
                                        ? ctl_socket_from_config(options.config_path)
                                        : Result<std::string>(options.socket_path);
  if (!socket_path) {
    std::fprintf(stderr, "seamless ctl: %s\n", socket_path.error().message.c_str());
    return kExitFailed;
  }
  const Result<CtlReply> reply = ctl_request(*socket_path, options.action, *timeout);
  if (!reply) {
    std::fprintf(stderr, "seamless ctl: %s\n", reply.error().message.c_str());
    return kExitFailed;
  }
  std::fputs(reply->text.c_str(), reply->ok ? stdout : stderr);
  return reply->ok ? kExitOk : kExitFailed;
}

}  // namespace seamless::proxy
