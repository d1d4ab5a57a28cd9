// Keeper: the main PID of `seamless run` (DESIGN §2). Small and without a data path:
// it owns the listeners, the flow lock table and the metrics segment, spawns one
// worker at a time from its own image, holds a duplicate of every proxied socket
// (HeldPairs, fed by the control channel) and runs every handoff.
//
// It also accepts every client itself and passes it on (kClientAccepted): a worker
// that accepted would hold a client only it knew of until its message reached the
// keeper, and a worker killed in that window would take the client with it. The
// keeper accepts only while a worker serves and the channel has room; otherwise new
// connections wait in the listen backlog.
//
//
//   SIGHUP   reload:  load + check the config (invalid: log, count, change nothing)
//                     -> quiesce the worker -> open/close listeners that changed ->
//                     a new worker adopts every live pair (no lock, no dump).
//   SIGUSR2  upgrade: preflight the binary on disk -> quiesce -> checkpoint (lock,
//                     dump, write, verify) -> execveat the checked file; the new keeper
//                     inherits the listeners and the metrics segment, and its first
//                     worker restores the file. Any failure before the exec: repair
//                     off, unlock, and a new worker adopts the live sockets.
//   worker died:      (any exit without a confirmed quiesce) read the channel to EOF,
//                     trim each pair's overhang (DESIGN §3) and a new worker adopts
//                     the live sockets — no lock, no dump (nothing moves them once the
//                     worker is gone). Should a trim fail: lock, dump, and a new worker
//                     restores. Respawns back off when the worker keeps dying.
//   SIGTERM/INT      close the listeners, the worker drains (drain_timeout), exit 0.
//
// Requests that arrive while a handoff runs are coalesced and served after it.
#pragma once

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "metrics/metrics.h"
#include "metrics/segment.h"
#include "proxy/control_channel.h"
#include "proxy/ctl_server.h"
#include "proxy/ctl_waiters.h"
#include "proxy/held_pairs.h"
#include "proxy/listener.h"
#include "proxy/logging.h"
#include "proxy/uv_handle.h"
#include "repair/flow_lock.h"
#include "repair/packet_hold.h"
#include "repair/sys.h"

namespace seamless::proxy {

// What a keeper inherits from the keeper that exec'ed it (environment variables).
struct KeeperInheritance {
  std::map<std::string, UniqueFd> listeners;  // by service name
  std::string handoff_path;                   // the file its first worker restores
  std::string binary_path;                    // the path the first keeper was started with
  int64_t exec_started_ns = 0;                // CLOCK_MONOTONIC before the exec
  int64_t upgrade_started_ns = 0;             // CLOCK_MONOTONIC at the upgrade's preflight
  bool after_exec = false;
  // The upgrade's worker, already started from this image by the keeper before the
  // exec (Keeper::start_successor): it waits for kAdoptEnd naming the file.
  pid_t successor_pid = -1;
  int successor_pidfd = -1;
  int successor_channel = -1;
  std::string successor_config_sha;  // of the config text it was given
  // The flow lock's netfilter socket (SEAMLESS_FLOW_LOCK_FD): the exec does not close
  // it, since closing one waits for the grace period of the last lock transaction.
  UniqueFd flow_lock_socket;
  // The packet hold's socket and queue (repair::kPacketHoldEnvVar).
  UniqueFd packet_hold_socket;
  uint16_t packet_hold_queue = 0;
  // The dumped sockets came through the exec: this memfd says which fd is which
  // (kept_sockets.h, kKeptSocketsEnvVar).
  UniqueFd kept_sockets;
};

// The whole of a (config) file.
Result<std::string> read_text_file(const std::string& path);

// Reads (and removes from the environment) what an exec'ing keeper passed on.
Result<KeeperInheritance> inherit_from_environment();

struct KeeperOptions {
  std::chrono::milliseconds quiesce_timeout{5000};
  std::chrono::milliseconds preflight_timeout{10000};
  std::chrono::milliseconds restart_backoff_min{100};
  std::chrono::milliseconds restart_backoff_max{5000};
};

class Keeper : public CtlHandler {
 public:
  Keeper(config::Config config, std::string config_path, Logger log,
         metrics::MetricsSegment segment, std::optional<repair::PacketHold> hold,
         repair::FlowLock lock, KeeperInheritance inherited, KeeperOptions options = {});
  ~Keeper();
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  // Opens what was not inherited, spawns the first worker and runs until a SIGTERM's
  // drain has finished. The exit code.
  int run();

  // keeper_ctl.cc: the control socket (`seamless ctl`), <handoff.dir>/ctl.sock.
  std::string status() override;
  void reload(CtlDone done) override;
  void upgrade(CtlDone done) override;

 private:
  enum class Action { kNone, kReload, kUpgrade, kCrash, kStop };
  struct WorkerChild {
    pid_t pid = -1;
    UniqueFd pidfd;
    ControlChannel channel;
    UvHandle<uv_poll_t> exit_poll;
    UvHandle<uv_poll_t> channel_poll;
    bool ready = false;
    bool channel_eof = false;
    int channel_events = 0;  // what channel_poll watches
    bool killed_at_quiesce_deadline = false;
  };

  // keeper.cc: life, signals, the worker.
  Status open_listeners(const config::Config& config);
  // keeper_accept.cc: clients.
  Status size_fd_cap();  // max_pairs_ from RLIMIT_NOFILE
  void add_listener(const std::string& service, UniqueFd fd, const std::string& address);
  bool serving() const;  // a ready worker and no handoff or stop under way
  // Accepts while serving(), every accepted client reached the worker and the pairs
  // held stay within max_pairs_.
  void update_accepting();
  void accept_client(const std::string& service, UniqueFd fd);
  void send_unsent_clients();
  void watch_channel(int events);
  Status start_signals();
  static void on_signal(uv_signal_t* handle, int signum);
  void request(Action action);
  void start_next_action();
  // A new worker; every held pair is handed to it (kAdoptBatch), and it restores
  // `restore_path` (if not empty) skipping those. After a crash (`trim_overhangs`) each
  // pair is trimmed first (DESIGN §3), after the spawn: the child's exec runs meanwhile.
  Status spawn_worker(const std::string& restore_path, bool trim_overhangs = false);
  // A worker process of `exe_fd` (-1: this image) with `config_text`, not yet watched.
  Result<std::unique_ptr<WorkerChild>> launch_worker(int exe_fd, const std::string& config_text);
  Status watch_worker();  // worker_'s exit and channel, on the loop
  // kAdoptBatch for every held pair, then kAdoptEnd naming the file to restore (if any).
  void hand_pairs_to_worker(bool trim_overhangs, const std::string& restore_path);
  static void on_channel(uv_poll_t* handle, int status, int events);
  static void on_worker_exit(uv_poll_t* handle, int status, int events);
  void drain_channel(bool to_eof);
  void handle_message(Message& message);
  void worker_exited();
  // kQuiesced during a handoff: the handoff goes on at once, the worker's exit is
  // seen (reaped) later, or waited for before an exec.
  void let_quiesced_worker_go();
  static void on_leaving_worker_exit(uv_poll_t* handle, int status, int events);
  void reap_leaving_worker();
  void after_quiesce(Action action);
  void respawn_after_crash();
  static void on_timer(uv_timer_t* timer);
  void stop_loop();

  // keeper_handoff.cc: reload, upgrade, crash checkpoint, a failed restore.
  void begin_reload();
  void begin_upgrade();
  void finish_reload();
  void finish_upgrade();
  // Locks, dumps, writes; on success every held socket is in repair mode and `path`
  // names the verified file. On failure `*failed` is the step's result label (lock,
  // dump or write failed).
  Result<std::string> checkpoint(metrics::HandoffResult* failed);
  // Ends the pairs with a leg already closed (keeper_handoff.cc). Given `live`, it also
  // gets every other pair as the checkpoint borrows them, both legs surveyed
  // (repair::survey_leg): the lock and the dump then ask no socket for its addresses.
  void settle_closed_pairs(std::vector<repair::LivePair>* live = nullptr);
  // After a crash: the pair's overhang discarded and its record rebuilt from the
  // kernel's counters, ready for a new worker to adopt.
  Status trim_for_adoption(repair::Sys& sys, HeldPair& pair);
  void exec_new_image(const std::string& handoff_path);
  // After the exec, when the old image kept the dumped sockets (kept_sockets.h): finds
  // which inherited fd is which (kept_pairs_). Returns the file to restore what was not
  // kept (a socket that is not the one named), or "" when nothing is: the file is then
  // removed once every kept pair is taken (never restore from it while the originals
  // live).
  std::string find_kept_sockets(const std::string& handoff_path);
  // Takes the kept pairs: all out of repair mode, their flows unlocked, each held
  // again and passed to `adopt`.
  void take_kept_pairs(const std::function<void(HeldPair& pair)>& adopt);
  // The upgrade's worker, started from the checked binary before the quiesce so that
  // its start (exec, libraries, config) is off the clients' stall; after the exec the
  // new image hands it the file at once (adopt_successor). Optional: without it the
  // new image spawns its worker as after any exec.
  void start_successor();
  // The old worker is quiesced once the successor reports kStarted (or fails to
  // within kSuccessorStartTimeout, when it is discarded): until then it still serves.
  bool await_successor_start();
  static constexpr std::chrono::milliseconds kSuccessorStartTimeout{1000};
  static void on_successor_channel(uv_poll_t* handle, int status, int events);
  void successor_started();
  void quiesce_worker();
  void prelock_flows();
  void unlock_prelocked();
  void discard_successor();  // killed and reaped: the upgrade did not reach the exec
  Status adopt_successor(const std::string& restore_path);
  // The upgrade stops here (refused, failed, or abandoned): nothing of it is kept.
  void end_upgrade_attempt();
  void recover_from_restore_crash();
  // The restoring worker is ready: the file goes, its pairs are ordinary held pairs.
  void restore_done();
  // The new worker of the running handoff is ready: counted, timed, logged, answered.
  void handoff_done(const std::string& summary);
  uint64_t queued_bytes() const;
  std::vector<std::string> worker_config_env() const;

  // keeper_ctl.cc: listens (or keeps listening, after an exec) on the control socket.
  void start_ctl();
  // The running handoff ended: answers the clients waiting for it.
  void ctl_finished(bool ok, const std::string& message);

  config::Config config_;
  std::string config_path_;
  std::string config_text_;  // what the workers parse: the text that was checked
  std::optional<config::Config> pending_config_;
  std::string pending_config_text_;
  std::map<std::string, UniqueFd> pending_listeners_;  // opened for the pending reload
  Logger log_;
  metrics::MetricsSegment segment_;
  metrics::Metrics metrics_;
  // When set, lock_ queues locked flows' packets to it instead of dropping them, and
  // every unlock of ours releases them all; the workers get the same socket.
  std::optional<repair::PacketHold> hold_;
  repair::FlowLock lock_;
  KeeperInheritance inherited_;
  KeeperOptions options_;

  uv_loop_t loop_{};
  std::map<std::string, std::unique_ptr<Listener>> listeners_;  // by service name
  std::map<std::string, std::string> listener_addresses_;
  HeldPairs pairs_;
  // Accepted clients (held in pairs_) the worker was not told of yet: the channel was
  // full. In order; a new worker gets them with everything else (kAdoptBatch).
  std::deque<uint64_t> unsent_clients_;
  // The keeper and the worker each hold one fd per proxied socket, two per pair, under
  // the same RLIMIT_NOFILE: beyond (limit - reserve) / 2 pairs an fd would be missing
  // somewhere (an SCM_RIGHTS fd dropped, a backend not connected). So the keeper stops
  // accepting there, and new connections wait in the listen backlog.
  size_t max_pairs_ = 0;
  bool at_fd_cap_ = false;       // the listeners stopped for it
  bool fd_cap_episode_ = false;  // at the cap; ends well below it
  bool fd_cap_logged_ = false;   // this episode was logged
  std::chrono::steady_clock::time_point last_fd_cap_log_{};
  std::unique_ptr<WorkerChild> worker_;
  std::unique_ptr<WorkerChild> leaving_worker_;  // quiesced, not reaped yet
  std::string restoring_path_;  // the file the current worker restores, until kReady
  // After an upgrade's exec: the kept sockets' pairs, still in repair mode and locked
  // until take_kept_pairs(); and the file it removes then, if nothing else needs it.
  std::vector<Message> kept_pairs_;
  std::string kept_handoff_file_;
  std::optional<UniqueFd> upgrade_binary_;  // preflighted, while an upgrade runs
  // An upgrade's flows, locked before its worker quiesces (prelock_flows), sorted; the
  // checkpoint takes them over, and an attempt that ends before it unlocks them.
  std::vector<repair::Flow> prelocked_;
  bool upgrade_keeps_sockets_ = false;      // it takes the dumped sockets (kept_sockets.h)
  std::unique_ptr<WorkerChild> successor_;   // started from it, idle until after the exec
  std::string successor_config_sha_;
  bool awaiting_successor_ = false;  // its kStarted, before the quiesce

  Action running_ = Action::kNone;  // the handoff in progress
  bool reload_requested_ = false;
  bool upgrade_requested_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point action_started_;
  std::chrono::steady_clock::time_point last_crash_;
  std::chrono::milliseconds backoff_{0};
  int quick_crashes_ = 0;  // worker deaths each within 10 s of the one before

  UvHandle<uv_signal_t> sighup_, sigusr2_, sigterm_, sigint_;
  UvHandle<uv_timer_t> quiesce_timer_;
  UvHandle<uv_timer_t> respawn_timer_;

  std::unique_ptr<CtlServer> ctl_;
  CtlWaiters ctl_waiters_;
};

}  // namespace seamless::proxy
