// The keeper's control socket. See ctl_server.h.
#include "proxy/ctl_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>

#include "proxy/sockets.h"

namespace seamless::proxy {
namespace {

constexpr const char* kListenFdVar = "SEAMLESS_CTL_LISTEN_FD";
constexpr const char* kPathVar = "SEAMLESS_CTL_PATH";
constexpr const char* kWaitingFdsVar = "SEAMLESS_CTL_WAITING_FDS";
constexpr uint64_t kAcceptPauseMs = 1000;

std::optional<int> parse_fd(std::string_view text) {
  int fd = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (ec != std::errc() || end != text.data() + text.size() || fd < 0) return std::nullopt;
  return fd;
}

// An inherited fd number is only trusted if it names a socket; it is close-on-exec
// again from here on, so no worker inherits it.
UniqueFd take_socket_fd(std::string_view text) {
  const std::optional<int> fd = parse_fd(text);
  struct stat st {};
  if (!fd || ::fstat(*fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return UniqueFd();
  ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
  return UniqueFd(*fd);
}

void set_cloexec(int fd, bool cloexec) {
  if (fd >= 0) ::fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0);
}

// A request or a reply text we echo or send must stay one printable line.
std::string printable(std::string_view text, size_t max) {
  std::string out;
  for (const char c : text.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

// One best-effort, non-blocking write: for answers given while closing.
void send_now(int fd, const std::string& text) {
  (void)!::send(fd, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

std::optional<CtlRequest> parse_ctl_request(std::string_view line) {
  constexpr std::string_view kBlank = " \t\r";
  const size_t first = line.find_first_not_of(kBlank);
  if (first == std::string_view::npos) return std::nullopt;
  line = line.substr(first, line.find_last_not_of(kBlank) - first + 1);
  if (line == "status") return CtlRequest::kStatus;
  if (line == "reload") return CtlRequest::kReload;
  if (line == "upgrade") return CtlRequest::kUpgrade;
  return std::nullopt;
}

std::string format_ctl_reply(bool ok, std::string_view message) {
  std::string reply = ok ? "ok" : "error";
  if (!message.empty()) reply.append(" ").append(message);
  if (reply.back() != '\n') reply += '\n';
  return reply;
}

CtlInheritance CtlInheritance::from_environment() {
  CtlInheritance in;
  const char* listen_fd = std::getenv(kListenFdVar);
  const char* path = std::getenv(kPathVar);
  if (listen_fd != nullptr && path != nullptr) {
    in.listener = take_socket_fd(listen_fd);
    if (in.listener) in.path = path;
  }
  if (const char* waiting = std::getenv(kWaitingFdsVar)) {
    std::string_view list = waiting;
    while (!list.empty()) {
      const size_t comma = list.find(',');
      if (UniqueFd fd = take_socket_fd(list.substr(0, comma)); fd) {
        in.waiting.push_back(std::move(fd));
      }
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  for (const char* name : {kListenFdVar, kPathVar, kWaitingFdsVar}) ::unsetenv(name);
  return in;
}

struct CtlServer::Client {
  enum class State { kReading, kWaiting, kWriting };
  uint64_t id = 0;
  CtlServer* server = nullptr;
  PolledSocket socket;
  UvHandle<uv_timer_t> timer;  // the request, then the write deadline
  State state = State::kReading;
  std::string in;
  std::string out;
  size_t written = 0;
};

CtlServer::CtlServer(uv_loop_t* loop, CtlHandler& handler, Logger log, CtlServerOptions options)
    : loop_(loop),
      handler_(handler),
      log_(std::move(log)),
      options_(options),
      self_(std::make_shared<CtlServer*>(this)) {}

CtlServer::~CtlServer() {
  *self_ = nullptr;
  for (auto& [id, client] : clients_) {
    if (client->state == Client::State::kWaiting && !handed_on_) {
      send_now(client->socket.fd(),
               format_ctl_reply(false, "seamless is stopping; the action did not finish"));
    }
  }
  clients_.clear();
  pause_timer_.close(nullptr);
  if (handed_on_) path_.clear();  // the socket file is the next image's now
  close_listener();
}

void CtlServer::on_listener(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<CtlServer*>(handle->data);
  if (status < 0) {
    self->listener_.forget_events();
    self->log_->error("control socket {}: {}", self->path_, uv_strerror(status));
    return;
  }
  self->accept_all();
}

void CtlServer::on_pause_end(uv_timer_t* timer) {
  auto* self = static_cast<CtlServer*>(timer->data);
  (void)self->listener_.watch(UV_READABLE, &on_listener);
}

void CtlServer::accept_all() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        // Level-triggered: without a pause this would spin until an fd is free.
        log_->warn("control socket: accept: {}; pausing {}ms", errno_text(errno),
                   kAcceptPauseMs);
        (void)listener_.watch(0, &on_listener);
        uv_timer_start(pause_timer_.get(), &on_pause_end, kAcceptPauseMs, 0);
      }
      return;
    }
    if (clients_.size() >= options_.max_clients) {
      send_now(fd.get(), format_ctl_reply(false, "too many control connections; try again"));
      continue;
    }
    Client* client = add_client(std::move(fd));
    if (client == nullptr) continue;
    uv_timer_start(client->timer.get(), &on_client_timer,
                   uint64_t(options_.request_timeout.count()), 0);
    if (client->socket.watch(UV_READABLE, &on_client) != 0) close_client(client->id);
  }
}

CtlServer::Client* CtlServer::add_client(UniqueFd fd) {
  auto client = std::make_unique<Client>();
  client->id = next_id_++;
  client->server = this;
  if (client->socket.open(loop_, std::move(fd), client.get()) != 0 ||
      client->timer.init(uv_timer_init(loop_, client->timer.get())) != 0) {
    log_->error("control socket: cannot watch a client");
    return nullptr;
  }
  client->timer.get()->data = client.get();
  Client* raw = client.get();
  clients_[raw->id] = std::move(client);
  return raw;
}

std::vector<CtlDone> CtlServer::adopt_waiting(std::vector<UniqueFd> fds) {
  std::vector<CtlDone> done;
  for (UniqueFd& fd : fds) {
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
    Client* client = add_client(std::move(fd));
    if (client == nullptr) continue;
    client->state = Client::State::kWaiting;
    done.push_back(done_for(client->id));
  }
  return done;
}

void CtlServer::on_client(uv_poll_t* handle, int status, int events) {
  auto* client = static_cast<Client*>(handle->data);
  CtlServer* self = client->server;
  if (status < 0) {
    client->socket.forget_events();
    self->close_client(client->id);
    return;
  }
  // Each branch may close the client: nothing touches it afterwards.
  if (client->state == Client::State::kReading && (events & UV_READABLE) != 0) {
    self->read_request(*client);
  } else if (client->state == Client::State::kWriting && (events & UV_WRITABLE) != 0) {
    self->write_reply(*client);
  }
}

void CtlServer::on_client_timer(uv_timer_t* timer) {
  auto* client = static_cast<Client*>(timer->data);
  CtlServer* self = client->server;
  if (client->state == Client::State::kReading) {
    send_now(client->socket.fd(), format_ctl_reply(false, "no request within the time allowed"));
  } else {
    self->log_->warn("control socket: a client did not read its answer; dropped");
  }
  self->close_client(client->id);
}

void CtlServer::read_request(Client& client) {
  char buf[CtlServerOptions::kMaxRequest];
  bool eof = false;
  for (;;) {
    const ssize_t n = ::recv(client.socket.fd(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      client.in.append(buf, size_t(n));
      if (client.in.find('\n') != std::string::npos ||
          client.in.size() >= CtlServerOptions::kMaxRequest) {
        break;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // more to come
    if (n < 0 || client.in.empty()) {
      close_client(client.id);  // reset, or gone without a word
      return;
    }
    eof = true;  // a request without newline, then a shutdown: fine
    break;
  }
  const size_t newline = client.in.find('\n');
  (void)client.socket.watch(0, &on_client);
  uv_timer_stop(client.timer.get());
  client.state = Client::State::kWaiting;
  if (newline == std::string::npos && !eof) {
    answer(client.id, false,
           "request too long (at most " + std::to_string(CtlServerOptions::kMaxRequest - 1) +
               " bytes: status, reload or upgrade)");
    return;
  }
  const std::string line = client.in.substr(0, newline);
  const std::optional<CtlRequest> request = parse_ctl_request(line);
  if (!request) {
    answer(client.id, false,
           "unknown request \"" + printable(line, 32) + "\" (expected status, reload or upgrade)");
    return;
  }
  dispatch(client, *request);
}

void CtlServer::dispatch(Client& client, CtlRequest request) {
  const uint64_t id = client.id;
  switch (request) {
    case CtlRequest::kStatus: answer(id, true, handler_.status()); return;
    case CtlRequest::kReload:
      log_->info("control socket: reload requested");
      handler_.reload(done_for(id));
      return;
    case CtlRequest::kUpgrade:
      log_->info("control socket: upgrade requested");
      handler_.upgrade(done_for(id));
      return;
  }
}

CtlDone CtlServer::done_for(uint64_t id) {
  std::weak_ptr<CtlServer*> weak = self_;
  return [weak, id](bool ok, std::string message) {
    const std::shared_ptr<CtlServer*> self = weak.lock();
    if (self && *self != nullptr) (*self)->answer(id, ok, message);
  };
}

void CtlServer::answer(uint64_t id, bool ok, std::string_view message) {
  auto it = clients_.find(id);
  if (it == clients_.end() || it->second->state != Client::State::kWaiting) return;
  Client& client = *it->second;
  client.state = Client::State::kWriting;
  client.out = format_ctl_reply(ok, message);
  uv_timer_start(client.timer.get(), &on_client_timer, uint64_t(options_.write_timeout.count()),
                 0);
  write_reply(client);
}

void CtlServer::write_reply(Client& client) {
  while (client.written < client.out.size()) {
    const ssize_t n = ::send(client.socket.fd(), client.out.data() + client.written,
                             client.out.size() - client.written, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      client.written += size_t(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (client.socket.watch(UV_WRITABLE, &on_client) != 0) close_client(client.id);
      return;
    }
    break;  // gone (EPIPE, ECONNRESET): nothing more to do for it
  }
  close_client(client.id);  // the close is the end of the answer
}

void CtlServer::close_client(uint64_t id) { clients_.erase(id); }

std::vector<std::string> CtlServer::prepare_exec() {
  set_inherit(true);
  handed_on_ = true;
  std::vector<std::string> env;
  if (listener_.valid()) {
    env.push_back(std::string(kListenFdVar) + "=" + std::to_string(listener_.fd()));
    env.push_back(std::string(kPathVar) + "=" + path_);
  }
  std::string waiting;
  for (const auto& [id, client] : clients_) {
    if (client->state != Client::State::kWaiting) continue;
    waiting += (waiting.empty() ? "" : ",") + std::to_string(client->socket.fd());
  }
  if (!waiting.empty()) env.push_back(std::string(kWaitingFdsVar) + "=" + waiting);
  return env;
}

void CtlServer::exec_failed() {
  set_inherit(false);
  handed_on_ = false;
}

void CtlServer::set_inherit(bool inherit) {
  set_cloexec(listener_.fd(), !inherit);
  for (const auto& [id, client] : clients_) {
    if (client->state == Client::State::kWaiting) set_cloexec(client->socket.fd(), !inherit);
  }
}

}  // namespace seamless::proxy
