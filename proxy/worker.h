// Worker: the data path of DESIGN §2 — one libuv loop with a listener per service,
// health checks, and every proxied pair (PairEngine, PairTable).
//
// Life:
//   create()                   services, metrics handles, the loop; binds nothing
//   open_listeners()           binds each service's address      } or both, from a keeper
//   adopt_listeners/adopt_pairs  takes sockets from elsewhere     } (restore pairs first)
//   run()                      until a drain or a quiesce has finished; returns 0
//
// Under a keeper the worker has no listeners: the keeper accepts and hands each client
// over (accept_from_keeper), so that no worker death can take an accepted client along.
//
// Stopping (each also reachable from another thread, through a uv_async):
//   drain   (SIGTERM/SIGINT, request_drain): close the listeners, let pairs finish up to
//           drain_timeout, then close the rest with FIN both ways.
//   quiesce (request_quiesce): stop at a consistent point — between two loop callbacks,
//           so no peek/send/trunc step is half done — stop accepting (listeners stay
//           open), and hand everything over: take_listeners(), take_pairs() (or, with
//           WorkerOptions::leave_after_quiesce, every pair's record, and the process ends).
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "proxy/health_checker.h"
#include "proxy/listener.h"
#include "proxy/logging.h"
#include "proxy/observer.h"
#include "proxy/pair.h"
#include "proxy/pair_engine.h"
#include "proxy/service.h"
#include "proxy/socket_ops.h"
#include "proxy/uv_handle.h"

namespace seamless::proxy {

struct WorkerOptions {
  bool handle_signals = true;      // SIGTERM / SIGINT start a drain (off when embedded)
  size_t scratch_bytes = 1 << 20;  // the one forwarding buffer (DESIGN §3: 1 MiB)
  // Runs on the loop when the worker stops (drained or quiesced), so that handles the
  // embedder added to loop() can be closed and run() can return.
  std::function<void()> on_stop;
  // The syscalls on proxied sockets (borrowed; null: the real ones). Tests inject faults.
  SocketOps* ops = nullptr;
  // Off: run() does not say "worker ready"; the embedder calls log_ready() once the
  // pairs it hands over while the loop runs are all in.
  bool ready_when_running = true;
  // Set when the process ends with a quiesce (a worker under a keeper, which holds a
  // duplicate of every socket): the quiesce passes every pair's record to it, in id
  // order, and it does not return. No handle is closed first: the exit closes them all
  // at once, where closing 10,000 poll handles one by one (an epoll_ctl each, then
  // their callbacks) held the 5,000-pair upgrade up by ~40 ms.
  std::function<void(std::vector<repair::PairRecord>)> leave_after_quiesce;
};

// A listening socket passed between owners, by service name.
struct ListenerFd {
  std::string service;
  UniqueFd fd;
};

class Worker {
 public:
  // Borrows `metrics` and `observer`, which must outlive the worker.
  static Result<std::unique_ptr<Worker>> create(const config::Config& config,
                                                metrics::Metrics& metrics, Logger log,
                                                PairObserver& observer, WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // "service pg: listen 127.0.0.1:7000: address already in use"
  Status open_listeners();
  Status adopt_listeners(std::vector<ListenerFd> listeners);
  // Pairs from an earlier worker. A pair whose service is not configured is aborted.
  Status adopt_pairs(std::vector<DetachedPair> pairs);
  // The same, one at a time while the loop runs (each is served from here on); then
  // adoption_done() once all are in.
  void adopt_pair(DetachedPair pair);
  void adoption_done();
  // "worker ready: 1 services, 12 pairs"
  void log_ready() const;

  int run();

  // Loop thread only: a client the keeper accepted and holds under `pair_id`. Served
  // like one from a listener, or refused (observer's on_client_refused) when its
  // service is over max_connections, unknown, or the worker is stopping.
  void accept_from_keeper(const std::string& service, uint64_t pair_id, UniqueFd fd);

  void request_drain();    // thread-safe
  void request_quiesce();  // thread-safe
  // Loop thread only: quiesces now, without the uv_async hop to the next loop turn
  // (which runs every pending forwarding callback first: 3 to 6 ms at 100 busy pairs,
  // all of it inside the clients' stall).
  void quiesce_now();

  // After run() returned from a quiesce.
  std::vector<DetachedPair> take_pairs() { return std::move(detached_); }
  std::vector<ListenerFd> take_listeners();

  // Loop thread only (or after run()).
  size_t pair_count() const { return pairs_.size(); }
  // For handles of the embedder (a keeper link); close them in options.on_stop.
  uv_loop_t* loop() const { return loop_.get(); }
  // Whether run() ended in a quiesce (take_pairs() then holds every pair).
  bool quiesced() const { return quiesced_; }

 private:
  enum class Request : int { kNone = 0, kDrain = 1, kQuiesce = 2 };

  Worker(const config::Config& config, Logger log, PairObserver& observer, WorkerOptions options);
  Status init(metrics::Metrics& metrics);
  Status start_serving();
  void admit(ServiceRuntime& service, UniqueFd fd, uint64_t pair_id = 0);
  void reject(ServiceRuntime& service, UniqueFd fd, uint64_t pair_id);
  void request(Request r);
  static void on_async(uv_async_t* handle);
  static void on_signal(uv_signal_t* handle, int signum);
  static void on_drain_timeout(uv_timer_t* timer);
  void begin_drain(const char* why);
  void quiesce();
  void stop_checks();
  void finish();
  void close_loop();

  config::Config config_;
  Logger log_;
  WorkerOptions options_;
  std::unique_ptr<uv_loop_t> loop_;
  bool loop_open_ = false;
  PairObserver& observer_;
  SocketOps ops_;
  PairTable pairs_;
  std::unique_ptr<PairEngine> engine_;
  std::vector<std::unique_ptr<ServiceRuntime>> services_;
  std::vector<std::unique_ptr<Listener>> listeners_;  // parallel to services_ (null: none yet)
  std::vector<std::unique_ptr<HealthChecker>> checkers_;
  UvHandle<uv_async_t> async_;
  UvHandle<uv_signal_t> sigterm_;
  UvHandle<uv_signal_t> sigint_;
  UvHandle<uv_timer_t> drain_timer_;
  std::mutex async_mu_;  // guards async_ against a request racing finish()
  bool async_open_ = false;
  std::atomic<int> requested_{0};
  bool draining_ = false;
  bool finished_ = false;
  bool quiesced_ = false;
  std::vector<DetachedPair> detached_;
};

}  // namespace seamless::proxy
