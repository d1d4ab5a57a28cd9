// The keeper's control socket: `seamless ctl status|reload|upgrade` (proxy/README.md).
//
// Protocol, one request per connection on `<handoff.dir>/ctl.sock` (SOCK_STREAM, 0600):
//   client -> keeper   one line: "status", "reload" or "upgrade" (at most kMaxRequest
//                      bytes; a missing final newline is fine if the client then
//                      shuts down its side)
//   keeper -> client   "ok <message>" or "error <message>" as the first line, more lines
//                      may follow; then the keeper closes the connection.
// reload and upgrade are answered when the handoff has finished, not when it starts.
//
// Everything runs on the keeper's libuv loop, with raw non-blocking sockets under a
// uv_poll_t each: no read or write ever blocks the loop, a client that sends nothing
// is dropped after `request_timeout`, one that does not read its answer after
// `write_timeout`, and at most `max_clients` connections are open at once.
//
// An upgrade execs a new keeper image, and the client waiting for its outcome must get
// the answer from that image: prepare_exec() clears close-on-exec on the listening
// socket and on every waiting client and returns the environment that names them; the
// new keeper reads it (CtlInheritance::from_environment), keeps listening on the same
// socket, and adopt_waiting() gives it the callbacks that answer those clients.
#pragma once

#include <sys/stat.h>
#include <sys/un.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "proxy/logging.h"
#include "proxy/polled_socket.h"
#include "proxy/uv_handle.h"

namespace seamless::proxy {

// Answers one request: ok or not, and the message (may hold more lines). Calling it
// more than once, or after the client has gone, does nothing.
using CtlDone = std::function<void(bool ok, std::string message)>;

// What the control socket asks of the keeper. Called on the loop thread.
class CtlHandler {
 public:
  virtual ~CtlHandler() = default;
  // The keeper's state, one or more lines; answered "ok <text>".
  virtual std::string status() = 0;
  // Start the action (or join the one requested already); `done` runs once it has
  // finished, succeeded or failed.
  virtual void reload(CtlDone done) = 0;
  virtual void upgrade(CtlDone done) = 0;
};

// The requests the server understands.
enum class CtlRequest { kStatus, kReload, kUpgrade };

// Parses one request line (without its newline; a trailing '\r' and surrounding
// spaces are ignored). nullopt for anything else.
std::optional<CtlRequest> parse_ctl_request(std::string_view line);

// The wire form of an answer: "ok <message>\n" or "error <message>\n".
std::string format_ctl_reply(bool ok, std::string_view message);

// `<dir>/ctl.sock`.
std::string ctl_socket_path(const std::string& handoff_dir);

// What an exec'ing keeper passed on in the environment.
struct CtlInheritance {
  UniqueFd listener;              // still listening
  std::string path;               // where it is bound
  std::vector<UniqueFd> waiting;  // clients waiting for the upgrade's outcome

  // Reads and removes SEAMLESS_CTL_*; fds that are not sockets are ignored. Every fd
  // taken is close-on-exec again.
  static CtlInheritance from_environment();
};

struct CtlServerOptions {
  static constexpr size_t kMaxRequest = 64;  // bytes, newline included
  size_t max_clients = 64;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
};

class CtlServer {
 public:
  CtlServer(uv_loop_t* loop, CtlHandler& handler, Logger log, CtlServerOptions options = {});
  // Closes every connection (clients still waiting get "error seamless is stopping")
  // and removes the socket file if it is still the one this server bound. Must run
  // while the loop can still close handles.
  ~CtlServer();
  CtlServer(const CtlServer&) = delete;
  CtlServer& operator=(const CtlServer&) = delete;

  // Listens on `path`: the inherited socket if it was bound there, else a new one
  // bound beside it and renamed over `path` (a stale file is replaced; a socket some
  // other process still serves is not). Creates the directory (0700) if missing.
  // Called again with another path, it moves there (the old socket file goes).
  Status listen(const std::string& path, UniqueFd inherited = UniqueFd(),
                const std::string& inherited_path = "");

  // Takes clients an earlier image left waiting; returns one callback per client.
  std::vector<CtlDone> adopt_waiting(std::vector<UniqueFd> fds);

  // Just before an exec: the environment entries ("NAME=value") that hand the listener
  // and every waiting client to the next image, whose fds are now inherited. From here
  // on they are the next image's: destroying this server neither answers those clients
  // nor removes the socket file (it only closes its own fds).
  std::vector<std::string> prepare_exec();
  // The exec failed: everything is close-on-exec again (the callbacks still answer).
  void exec_failed();

  const std::string& path() const { return path_; }
  size_t clients() const { return clients_.size(); }

 private:
  struct Client;
  static void on_listener(uv_poll_t* handle, int status, int events);
  static void on_client(uv_poll_t* handle, int status, int events);
  static void on_client_timer(uv_timer_t* timer);
  static void on_pause_end(uv_timer_t* timer);
  Result<UniqueFd> bind_socket(const std::string& path, const sockaddr_un& address);
  void accept_all();
  Client* add_client(UniqueFd fd);
  void read_request(Client& client);
  void dispatch(Client& client, CtlRequest request);
  CtlDone done_for(uint64_t id);
  void answer(uint64_t id, bool ok, std::string_view message);
  void write_reply(Client& client);
  void close_client(uint64_t id);
  void set_inherit(bool inherit);
  void close_listener();

  uv_loop_t* loop_;
  CtlHandler& handler_;
  Logger log_;
  CtlServerOptions options_;
  std::string path_;
  dev_t path_dev_ = 0;  // the socket file this server bound, to remove only that one
  ino_t path_ino_ = 0;
  PolledSocket listener_;
  UvHandle<uv_timer_t> pause_timer_;  // accept paused after EMFILE
  std::map<uint64_t, std::unique_ptr<Client>> clients_;
  uint64_t next_id_ = 1;
  // Callbacks outlive the server in the keeper's hands: they check this first.
  std::shared_ptr<CtlServer*> self_;
  bool handed_on_ = false;  // prepare_exec() ran and exec_failed() did not
};

}  // namespace seamless::proxy
