// PairEngine: drives every pair of a worker through its life on the libuv loop.
//
//   accept_client ─► connect (balancer, non-blocking, connect_timeout; on failure the
//   next healthy backend) ─► PROXY header ─► forwarding (forwarder.h, both directions,
//   half-close) ─► closed: in order (both FINs passed on), by reset (propagated as RST),
//   idle timeout or drain (FIN both ways).
//
// Each socket has one uv_poll_t, whose events follow the pair's state (leg_events):
// readable while its outgoing flow can move, writable while the flow into it is blocked
// (or a connect / header write is pending). Every callback finishes what it starts (a
// whole peek/send/trunc step), so the engine can be stopped between any two callbacks:
// detach_all() then hands every pair on, with both fds open and a record each.
//
// The source files: pair_engine.cc (events, forwarding, closing), pair_connect.cc
// (backend connect, failover, header, timers), pair_handoff.cc (detach and adopt).
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "proxy/logging.h"
#include "proxy/observer.h"
#include "proxy/pair.h"
#include "proxy/socket_ops.h"

namespace seamless::proxy {

struct ServiceRuntime;
struct BackendRuntime;

class PairEngine {
 public:
  // The bytes one flow may move per callback before yielding to other sockets.
  static constexpr size_t kPumpBudget = 4 << 20;

  PairEngine(uv_loop_t* loop, PairTable& pairs, PairObserver& observer, SocketOps& ops, Logger log,
             size_t scratch_bytes);
  PairEngine(const PairEngine&) = delete;
  PairEngine& operator=(const PairEngine&) = delete;

  // A client the service's listener accepted (admission already decided).
  // `pair_id` 0: the table picks the next id; else the id the keeper gave the client.
  void accept_client(ServiceRuntime& service, UniqueFd fd, uint64_t pair_id = 0);

  // A pair from an earlier worker: both fds (the backend's may be invalid: connect
  // afresh) and its record. `service` is the runtime named by record.service.
  Status adopt(ServiceRuntime& service, DetachedPair detached);

  // Stops every pair where it stands and hands it on: poll handles closed, fds open.
  std::vector<DetachedPair> detach_all();
  // Every pair's record, in id order, with every handle left as it is: for a worker
  // whose process ends right after (WorkerOptions::leave_after_quiesce).
  std::vector<repair::PairRecord> records();

  // Ends every pair with FIN both ways (drain timeout).
  void close_all_gracefully(CloseReason reason);

  // Closes the engine's own loop handle (the adopted pairs' address reader), so that
  // the loop can close. Safe to call more than once; the engine works on afterwards.
  void close_handles();

  // Called (once per occurrence) when the last pair has closed.
  void set_on_empty(std::function<void()> on_empty) { on_empty_ = std::move(on_empty); }

 private:
  // pair_engine.cc
  static void on_poll(uv_poll_t* handle, int status, int events);
  void on_client_event(Pair& pair, int status, int events);
  void on_backend_event(Pair& pair, int status, int events);
  bool pump_flow(Pair& pair, bool upstream);
  void leg_failed(Pair& pair, bool client_leg, int error);
  void settle(Pair& pair);
  bool update_watch(Pair& pair);
  void close_gracefully(Pair& pair, CloseReason reason);
  void close_pair(Pair& pair, CloseReason reason, int error);
  void log_close(const Pair& pair, CloseReason reason, int error);

  // pair_connect.cc
  static void on_timer(uv_timer_t* timer);
  void connect_next(Pair& pair);
  // False when the connect failed at once (counted; try the next backend); true when it
  // is in progress, or when the pair was closed for a local shortage (out of fds).
  bool connect_to(Pair& pair, size_t backend_index);
  // A non-blocking connect on pair.server; 0 or the errno.
  int open_backend_socket(Pair& pair, const BackendRuntime& backend);
  // Counts and logs a failed connect, drops the socket; then tries the next backend.
  void connect_failed(Pair& pair, int error, bool try_next);
  void connect_succeeded(Pair& pair);
  bool write_pending_header(Pair& pair);
  void arm_idle_timer(Pair& pair);
  void on_idle_timer(Pair& pair);
  uint64_t client_hash(const Pair& pair) const;

  // pair_handoff.cc
  Status open_client(Pair& pair, UniqueFd fd, bool set_options = true);
  DetachedPair detach(Pair& pair);
  // Adopted pairs' addresses are read after the adoption, a batch per loop turn while
  // the loop has nothing else to do (see Pair::addresses_unread).
  void read_addresses_later(uint64_t pair_id);
  static void on_address_reader(uv_idle_t* handle);

  uv_loop_t* loop_;
  PairTable& pairs_;
  PairObserver& observer_;
  SocketOps& ops_;
  Logger log_;
  std::vector<std::byte> scratch_;  // the worker's one forwarding buffer
  std::function<void()> on_empty_;
  std::vector<uint64_t> addresses_to_read_;
  UvHandle<uv_idle_t> address_reader_;
};

}  // namespace seamless::proxy
