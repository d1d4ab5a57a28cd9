// The control socket's listening side: binding it safely, replacing a stale one, moving
// it, and keeping the one an earlier image passed on. See ctl_server.h.
#include "proxy/ctl_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

namespace seamless::proxy {
namespace {

constexpr int kBacklog = 64;

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return Error::logic("control socket path " + path + ": longer than " +
                        std::to_string(sizeof(address.sun_path) - 1) + " bytes");
  }
  path.copy(address.sun_path, path.size());
  return address;
}

// Whether a process still accepts connections on the unix socket at `address`.
bool someone_listens(const sockaddr_un& address) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return false;
  const int rc =
      ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  return rc == 0 || errno == EAGAIN;  // EAGAIN: a full backlog, but a live listener
}

Status make_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    // mkdir's mode passes through the umask; make it exactly 0700.
    if (::chmod(dir.c_str(), 0700) != 0) return Error::from_errno("chmod " + dir);
    return {};
  }
  if (errno != EEXIST) return Error::from_errno("mkdir " + dir);
  return {};
}

}  // namespace

std::string ctl_socket_path(const std::string& handoff_dir) {
  if (!handoff_dir.empty() && handoff_dir.back() == '/') return handoff_dir + "ctl.sock";
  return handoff_dir + "/ctl.sock";
}

void CtlServer::close_listener() {
  listener_.close(nullptr);
  struct stat st {};
  if (!path_.empty() && ::lstat(path_.c_str(), &st) == 0 && st.st_dev == path_dev_ &&
      st.st_ino == path_ino_) {
    ::unlink(path_.c_str());
  }
  path_.clear();
}

Status CtlServer::listen(const std::string& path, UniqueFd inherited,
                         const std::string& inherited_path) {
  Result<sockaddr_un> address = unix_address(path);
  if (!address) return address.error();
  UniqueFd fd;
  if (inherited && inherited_path == path) {
    fd = std::move(inherited);  // already bound and listening: no connection refused
  } else {
    // An earlier image's socket elsewhere (handoff.dir changed) is stale from now on.
    if (inherited && !inherited_path.empty()) ::unlink(inherited_path.c_str());
    inherited.reset();
    Result<UniqueFd> bound = bind_socket(path, *address);
    if (!bound) return bound.error();
    fd = std::move(*bound);
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::from_errno("control socket " + path);
  close_listener();  // moving (handoff.dir changed): the old one goes once the new one is up
  path_ = path;
  path_dev_ = st.st_dev;
  path_ino_ = st.st_ino;
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  if (!pause_timer_.initialized()) {
    if (pause_timer_.init(uv_timer_init(loop_, pause_timer_.get())) != 0) {
      return Error::logic("control socket " + path + ": cannot start a timer");
    }
    pause_timer_.get()->data = this;
  }
  uv_timer_stop(pause_timer_.get());
  if (listener_.open(loop_, std::move(fd), this) != 0 ||
      listener_.watch(UV_READABLE, &on_listener) != 0) {
    return Error::logic("control socket " + path + ": cannot watch it");
  }
  return {};
}

// Bound beside `path`, made 0600 before it listens, then renamed over `path`: a client
// never finds a half-made socket, and a stale file is replaced in one step.
Result<UniqueFd> CtlServer::bind_socket(const std::string& path, const sockaddr_un& address) {
  const std::string what = "control socket " + path;
  if (Status s = make_private_dir(path.substr(0, path.rfind('/'))); !s) {
    return s.error().context(what);
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error::logic(what + ": exists and is not a socket");
    if (someone_listens(address)) {
      return Error::logic(what + ": another process listens on it (two instances sharing " +
                          "one handoff.dir?)");
    }
  }
  const std::string temp = path + "." + std::to_string(::getpid()) + ".tmp";
  Result<sockaddr_un> temp_address = unix_address(temp);
  if (!temp_address) return temp_address.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno(what + ": socket");
  ::unlink(temp.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*temp_address),
             sizeof(*temp_address)) != 0) {
    return Error::from_errno(what + ": bind " + temp);
  }
  if (::chmod(temp.c_str(), 0600) != 0 || ::listen(fd.get(), kBacklog) != 0 ||
      ::rename(temp.c_str(), path.c_str()) != 0) {
    const Error error = Error::from_errno(what);
    ::unlink(temp.c_str());
    return error;
  }
  return fd;
}

}  // namespace seamless::proxy
