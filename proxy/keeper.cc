// Keeper: life, signals and the worker. See keeper.h; the handoffs are in keeper_handoff.cc.
#include "proxy/keeper.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdlib>

#include "metrics/labels.h"
#include "proxy/child_process.h"
#include "proxy/kept_sockets.h"
#include "proxy/sockets.h"
#include "proxy/test_hooks.h"

namespace seamless::proxy {


namespace {

Result<UniqueFd> config_memfd(const std::string& text) {
  UniqueFd fd(::memfd_create("seamless-config", MFD_CLOEXEC));
  if (!fd) return Error::from_errno("memfd_create");
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("write config memfd");
    done += size_t(n);
  }
  return fd;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    items.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

}  // namespace

Result<KeeperInheritance> inherit_from_environment() {
  KeeperInheritance in;
  if (const char* binary = std::getenv("SEAMLESS_BINARY")) in.binary_path = binary;
  if (const char* path = std::getenv("SEAMLESS_HANDOFF")) {
    in.handoff_path = path;
    in.after_exec = true;
  }
  if (const char* ns = std::getenv("SEAMLESS_EXEC_STARTED_NS")) {
    in.exec_started_ns = std::strtoll(ns, nullptr, 10);
    in.after_exec = true;
  }
  if (const char* ns = std::getenv("SEAMLESS_UPGRADE_STARTED_NS")) {
    in.upgrade_started_ns = std::strtoll(ns, nullptr, 10);
  }
  if (const char* list = std::getenv("SEAMLESS_LISTEN_FDS")) {
    for (const std::string& item : split_commas(list)) {
      const size_t eq = item.rfind('=');
      if (eq == std::string::npos) return Error::logic("SEAMLESS_LISTEN_FDS: bad item " + item);
      Result<int> fd = metrics::parse_fd_number(item.substr(eq + 1));
      if (!fd) return fd.error().context("SEAMLESS_LISTEN_FDS");
      ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
      in.listeners[item.substr(0, eq)] = UniqueFd(*fd);
    }
  }
  if (const char* successor = std::getenv("SEAMLESS_SUCCESSOR")) {
    // pid,pidfd,channel fd,sha256 of its config text
    const std::vector<std::string> parts = split_commas(successor);
    if (parts.size() != 4) return Error::logic(std::string("SEAMLESS_SUCCESSOR: ") + successor);
    // Plain non-negative numbers, as fd numbers are.
    Result<int> pid = metrics::parse_fd_number(parts[0]);
    Result<int> pidfd = metrics::parse_fd_number(parts[1]);
    Result<int> channel = metrics::parse_fd_number(parts[2]);
    if (!pid || !pidfd || !channel) {
      return Error::logic(std::string("SEAMLESS_SUCCESSOR: ") + successor);
    }
    ::fcntl(*pidfd, F_SETFD, FD_CLOEXEC);
    ::fcntl(*channel, F_SETFD, FD_CLOEXEC);
    in.successor_pid = *pid;
    in.successor_pidfd = *pidfd;
    in.successor_channel = *channel;
    in.successor_config_sha = parts[3];
  }
  if (const char* text = std::getenv("SEAMLESS_FLOW_LOCK_FD")) {
    Result<int> fd = metrics::parse_fd_number(text);
    if (!fd) return fd.error().context("SEAMLESS_FLOW_LOCK_FD");
    ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
    in.flow_lock_socket = UniqueFd(*fd);
  }
  if (const char* text = std::getenv(repair::kPacketHoldEnvVar)) {
    Result<std::pair<int, uint16_t>> hold = repair::PacketHold::parse_child_description(text);
    if (!hold) return hold.error();
    ::fcntl(hold->first, F_SETFD, FD_CLOEXEC);
    in.packet_hold_socket = UniqueFd(hold->first);
    in.packet_hold_queue = hold->second;
  }
  if (const char* text = std::getenv(kKeptSocketsEnvVar)) {
    Result<int> fd = metrics::parse_fd_number(text);
    if (!fd) return fd.error().context(kKeptSocketsEnvVar);
    ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
    in.kept_sockets = UniqueFd(*fd);
  }
  for (const char* name :
       {"SEAMLESS_HANDOFF", "SEAMLESS_EXEC_STARTED_NS", "SEAMLESS_LISTEN_FDS", "SEAMLESS_SUCCESSOR",
        "SEAMLESS_UPGRADE_STARTED_NS", "SEAMLESS_FLOW_LOCK_FD", repair::kPacketHoldEnvVar,
        kKeptSocketsEnvVar}) {
    ::unsetenv(name);
  }
  return in;
}

Keeper::Keeper(config::Config config, std::string config_path, Logger log,
               metrics::MetricsSegment segment, std::optional<repair::PacketHold> hold,
               repair::FlowLock lock, KeeperInheritance inherited, KeeperOptions options)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      log_(std::move(log)),
      segment_(std::move(segment)),
      metrics_(segment_),
      hold_(std::move(hold)),
      lock_(std::move(lock)),
      inherited_(std::move(inherited)),
      options_(options) {
  // Whatever the keeper unlocks (a failed handoff, a dead restoring worker, a trim),
  // nothing of its own stays locked: release every held packet.
  if (hold_) lock_.release_on_unlock(&*hold_, repair::ReleaseOnUnlock::kAllPackets);
}

Keeper::~Keeper() {
  listeners_.clear();  // their handles close in the uv_run below
  worker_.reset();
  ctl_.reset();  // its handles close in the uv_run below
  for (auto* h : {&sighup_, &sigusr2_, &sigterm_, &sigint_}) h->close(nullptr);
  quiesce_timer_.close(nullptr);
  respawn_timer_.close(nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

Status Keeper::open_listeners(const config::Config& config) {
  for (const config::Service& service : config.services) {
    const std::string address = service.listen.to_string();
    if (listeners_.count(service.name) != 0 && listener_addresses_[service.name] == address) {
      continue;
    }
    auto inherited = inherited_.listeners.find(service.name);
    if (inherited != inherited_.listeners.end() &&
        local_endpoint(inherited->second.get()).to_string() == to_endpoint(service.listen).to_string()) {
      add_listener(service.name, std::move(inherited->second), address);
      continue;
    }
    Result<UniqueFd> fd = open_listener(service.listen, service.v6only);
    if (!fd) return fd.error().context("service " + service.name);
    add_listener(service.name, std::move(*fd), address);
  }
  // Inherited listeners the config no longer names close here.
  inherited_.listeners.clear();
  return {};
}

Status Keeper::start_signals() {
  for (auto [handle, signum] :
       {std::pair{&sighup_, SIGHUP}, std::pair{&sigusr2_, SIGUSR2}, std::pair{&sigterm_, SIGTERM},
        std::pair{&sigint_, SIGINT}}) {
    if (handle->init(uv_signal_init(&loop_, handle->get())) != 0) return Error::logic("signal");
    handle->get()->data = this;
    if (uv_signal_start(handle->get(), &on_signal, signum) != 0) return Error::logic("signal");
  }
  // An exec'ing keeper blocked these; whatever arrived meanwhile is delivered now.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGHUP, SIGUSR2, SIGTERM, SIGINT, SIGCHLD}) sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  return {};
}

int Keeper::run() {
  if (uv_loop_init(&loop_) != 0) {
    log_->error("keeper: uv_loop_init failed");
    return 1;
  }
  if (Result<std::string> text = read_text_file(config_path_); text) {
    config_text_ = std::move(*text);
  } else {
    log_->error("keeper: {}", text.error().message);
    return 1;
  }
  if (Status s = open_listeners(config_); !s) {
    log_->error("{}", s.error().message);
    return 1;
  }
  if (Status s = size_fd_cap(); !s) {
    log_->error("keeper: {}", s.error().message);
    return 1;
  }
  for (auto* timer : {&quiesce_timer_, &respawn_timer_}) {
    timer->init(uv_timer_init(&loop_, timer->get()));
    timer->get()->data = this;
  }
  if (Status s = start_signals(); !s) {
    log_->error("keeper: {}", s.error().message);
    return 1;
  }
  start_ctl();
  if (inherited_.after_exec) {
    metrics_.bump_generation();
    if (inherited_.exec_started_ns > 0) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      const int64_t ns = int64_t(now.tv_sec) * 1000000000 + now.tv_nsec - inherited_.exec_started_ns;
      metrics_.observe_phase(metrics::HandoffPhase::kExec, std::chrono::nanoseconds(ns));
    }
    running_ = Action::kUpgrade;
    action_started_ = std::chrono::steady_clock::now();
  }
  std::string restore = inherited_.handoff_path;
  if (inherited_.kept_sockets) {
    crash_here_once_for_tests("SEAMLESS_TEST_CRASH_AFTER_EXEC");
    restore = find_kept_sockets(restore);
  }
  restoring_path_ = restore;
  if (inherited_.successor_pid > 0) {
    if (Status s = adopt_successor(restore); !s) {
      log_->error("keeper: {}", s.error().message);
      return 1;
    }
  }
  if (!worker_) {
    if (Status s = spawn_worker(restore); !s) {
      log_->error("keeper: cannot start a worker: {}", s.error().message);
      return 1;
    }
  }
  log_->info("keeper {} running (generation {}), worker {}", ::getpid(), metrics_.generation(),
             worker_->pid);
  uv_run(&loop_, UV_RUN_DEFAULT);
  return 0;
}

void Keeper::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Keeper*>(handle->data);
  switch (signum) {
    case SIGHUP: self->request(Action::kReload); break;
    case SIGUSR2: self->request(Action::kUpgrade); break;
    default: self->request(Action::kStop); break;
  }
}

void Keeper::request(Action action) {
  if (action == Action::kStop) {
    if (stopping_) return;
    stopping_ = true;
    log_->info("keeper: stopping: closing the listeners; the worker drains (drain_timeout {}ms)",
               config_.drain_timeout.count());
    // New connections are refused from now on instead of waiting in a backlog. The
    // fds close only in their handles' close callbacks, a loop turn later; shutdown()
    // stops a listening socket at once (the worker may log its drain before that turn).
    for (const auto& [service, listener] : listeners_) ::shutdown(listener->fd(), SHUT_RDWR);
    listeners_.clear();
    if (running_ == Action::kNone && worker_) {
      (void)worker_->channel.send(make_message(MessageType::kDrain));
    } else if (!worker_) {
      stop_loop();
    }
    return;
  }
  if (action == Action::kReload) reload_requested_ = true;
  if (action == Action::kUpgrade) upgrade_requested_ = true;
  start_next_action();
}

// One handoff at a time; requests that came meanwhile are served in turn, coalesced.
void Keeper::start_next_action() {
  if (running_ != Action::kNone || !worker_ || !worker_->ready) return;
  if (stopping_) {
    (void)worker_->channel.send(make_message(MessageType::kDrain));
    return;
  }
  if (upgrade_requested_) {
    upgrade_requested_ = false;
    reload_requested_ = false;  // the new keeper reads the config anyway
    begin_upgrade();
  } else if (reload_requested_) {
    reload_requested_ = false;
    begin_reload();
  }
}

std::vector<std::string> Keeper::worker_config_env() const {
  std::vector<std::string> env = {std::string(metrics::kFdEnvVar) + "=" +
                                  std::to_string(segment_.fd())};
  if (hold_) env.push_back(std::string(repair::kPacketHoldEnvVar) + "=" + hold_->describe_for_child());
  return env;
}

Result<std::unique_ptr<Keeper::WorkerChild>> Keeper::launch_worker(int exe_fd,
                                                                   const std::string& config_text) {
  Result<std::pair<ControlChannel, ControlChannel>> channel = ControlChannel::make_pair();
  if (!channel) return channel.error();
  Result<UniqueFd> config_fd = config_memfd(config_text);
  if (!config_fd) return config_fd.error();
  SpawnSpec spec;
  spec.exe_fd = exe_fd;
  spec.argv = {"seamless-worker", "worker", "--control-fd",
               std::to_string(channel->second.fd()), "--config-fd",
               std::to_string(config_fd->get()), "--config-name", config_path_};
  spec.inherit_fds = {channel->second.fd(), config_fd->get(), segment_.fd()};
  if (hold_) spec.inherit_fds.push_back(hold_->fd());
  spec.extra_env = worker_config_env();
  Result<ChildProcess> child = spawn_child(spec);
  if (!child) return child.error();
  // Listeners stay here: the keeper accepts (kClientAccepted).
  auto worker = std::make_unique<WorkerChild>();
  worker->pid = child->pid;
  worker->pidfd = std::move(child->pidfd);
  worker->channel = std::move(channel->first);
  return worker;
}

Status Keeper::spawn_worker(const std::string& restore_path, bool trim_overhangs) {
  Result<std::unique_ptr<WorkerChild>> worker = launch_worker(-1, config_text_);
  if (!worker) return worker.error();
  worker_ = std::move(*worker);
  hand_pairs_to_worker(trim_overhangs, restore_path);
  return watch_worker();
}

Status Keeper::watch_worker() {
  for (auto [handle, fd, cb] :
       {std::tuple{&worker_->exit_poll, worker_->pidfd.get(), &Keeper::on_worker_exit},
        std::tuple{&worker_->channel_poll, worker_->channel.fd(), &Keeper::on_channel}}) {
    if (handle->init(uv_poll_init(&loop_, handle->get(), fd)) != 0) {
      return Error::logic("keeper: cannot watch the worker");
    }
    handle->get()->data = this;
    uv_poll_start(handle->get(), UV_READABLE, cb);
  }
  worker_->channel_events = UV_READABLE;
  return {};
}

void Keeper::on_channel(uv_poll_t* handle, int, int events) {
  auto* self = static_cast<Keeper*>(handle->data);
  if ((events & UV_WRITABLE) != 0) self->send_unsent_clients();
  self->drain_channel(false);
}

void Keeper::drain_channel(bool to_eof) {
  // A message can end the worker's turn (kQuiesced): worker_ is checked each time.
  while (worker_ && !worker_->channel_eof) {
    Result<std::optional<Message>> m = worker_->channel.receive(/*wait=*/false);
    if (!m) {
      if (m.error().code == EAGAIN && !to_eof) return;
      if (m.error().code != EAGAIN) log_->error("keeper: {}", m.error().message);
      if (m.error().code == EAGAIN) return;
      continue;
    }
    if (!*m) {
      worker_->channel_eof = true;
      worker_->channel_poll.close(nullptr);
      return;
    }
    handle_message(**m);
  }
}

void Keeper::handle_message(Message& m) {
  switch (m.type) {
    case MessageType::kSync:
      if (Status s = worker_->channel.send(make_message(MessageType::kAck)); !s) {
        log_->error("keeper: {}", s.error().message);
      }
      return;
    case MessageType::kQuiesced:
      // Outside a handoff its exit is a crash like any other.
      if (running_ == Action::kReload || running_ == Action::kUpgrade) {
        let_quiesced_worker_go();
        after_quiesce(running_);
      }
      return;
    case MessageType::kStarted:  // only the upgrade's successor is waited for
      return;
    case MessageType::kReady:
      worker_->ready = true;
      // (An upgrade still running here is the new image's: its pairs were kept or restored.)
      if (!restoring_path_.empty() || running_ == Action::kUpgrade) restore_done();
      if (running_ != Action::kNone) handoff_done(m.text);
      start_next_action();
      update_accepting();
      return;
    case MessageType::kRestoreFailed:
      log_->error("restore failed: {}; the pairs in {} reset when their lock expires ({}ms)",
                  m.text, restoring_path_, config_.handoff.lock_timeout.count());
      if (running_ == Action::kUpgrade) ctl_waiters_.restore_failed(m.text);
      return;
    default:
      if (Status s = pairs_.apply(m); !s) log_->error("keeper: {}", s.error().message);
      if ((at_fd_cap_ && pairs_.size() < max_pairs_) ||
          (fd_cap_episode_ && pairs_.size() < max_pairs_ - max_pairs_ / 10)) {
        update_accepting();
      }
  }
}

void Keeper::on_worker_exit(uv_poll_t* handle, int, int) {
  static_cast<Keeper*>(handle->data)->worker_exited();
}

void Keeper::worker_exited() {
  const pid_t pid = worker_->pid;
  drain_channel(true);
  if (!worker_ || worker_->pid != pid) {
    // Its kQuiesced was still queued: the handoff went on from there.
    reap_leaving_worker();
    return;
  }
  Result<int> status = reap_child(pid);
  const bool killed_at_deadline = worker_->killed_at_quiesce_deadline;
  worker_->exit_poll.close(nullptr);
  worker_->channel_poll.close(nullptr);
  worker_.reset();
  update_accepting();
  if (quiesce_timer_.initialized()) uv_timer_stop(quiesce_timer_.get());
  const std::string how = status ? describe_exit(*status) : status.error().message;
  if (stopping_ && running_ == Action::kNone) {
    log_->info("keeper: worker {} {}; {} pairs left", pid, how, pairs_.size());
    stop_loop();
    return;
  }
  log_->error("keeper: worker {} {} while serving {} pairs: restarting it", pid, how,
              pairs_.size());
  const bool signaled = status && WIFSIGNALED(*status);
  metrics_.worker_restarted(killed_at_deadline ? metrics::WorkerRestartCause::kQuiesceTimeout
                            : signaled         ? metrics::WorkerRestartCause::kSignal
                                               : metrics::WorkerRestartCause::kExit);
  // A worker restoring or adopting after the exec belongs to an upgrade that goes on
  // (the next worker restores the rest, or adopts them all); any other death ends the
  // handoff it was part of (before the exec, an upgrade holds its checked binary).
  if ((running_ == Action::kReload && restoring_path_.empty()) ||
      (running_ == Action::kUpgrade && upgrade_binary_)) {
    // The handoff it was quiescing for runs again once a new worker serves.
    (running_ == Action::kReload ? reload_requested_ : upgrade_requested_) = true;
    metrics_.record_handoff(running_ == Action::kReload ? metrics::HandoffReason::kReload
                                                        : metrics::HandoffReason::kUpgrade,
                            metrics::HandoffResult::kQuiesceFailed);
    ctl_finished(false, std::string(running_ == Action::kReload ? "reload" : "upgrade") +
                            " failed: worker " + std::to_string(pid) + " " + how +
                            " while quiescing; it runs again once a new worker serves");
    running_ = Action::kNone;
    end_upgrade_attempt();
  }
  if (!restoring_path_.empty()) {
    recover_from_restore_crash();
    return;
  }
  respawn_after_crash();
}

// Every record of the worker is in: they come before kQuiesced, in order. Waiting for
// its exit instead cost ~40 ms at 5,000 pairs (the kernel closing 10,000 fds), all of
// it inside every client's stall; the sockets are the keeper's duplicates' too, so
// nothing of theirs changes while the worker's copies close.
void Keeper::let_quiesced_worker_go() {
  leaving_worker_ = std::move(worker_);
  leaving_worker_->channel_poll.close(nullptr);
  leaving_worker_->exit_poll.get()->data = this;
  uv_poll_start(leaving_worker_->exit_poll.get(), UV_READABLE, &on_leaving_worker_exit);
  if (quiesce_timer_.initialized()) uv_timer_stop(quiesce_timer_.get());
  update_accepting();
}

void Keeper::on_leaving_worker_exit(uv_poll_t* handle, int, int) {
  static_cast<Keeper*>(handle->data)->reap_leaving_worker();
}

// After kQuiesced the worker has nothing left to do but exit: one that has not yet
// (before an exec, which must not leave it to an image that does not know it) is
// killed, which is the same to its duplicates.
void Keeper::reap_leaving_worker() {
  if (!leaving_worker_) return;
  ::kill(leaving_worker_->pid, SIGKILL);
  Result<int> status = reap_child(leaving_worker_->pid);
  if (!status) log_->warn("keeper: {}", status.error().message);
  leaving_worker_->exit_poll.close(nullptr);
  leaving_worker_.reset();
}

void Keeper::after_quiesce(Action action) {
  if (action == Action::kReload) {
    finish_reload();
  } else {
    finish_upgrade();
  }
}

void Keeper::respawn_after_crash() {
  const auto now = std::chrono::steady_clock::now();
  // Dying again soon after a restart is a crash loop: back off, doubling.
  // Three deaths in quick succession are forgiven (each costs the clients a stall, not
  // their bytes); from the fourth on, each waits twice as long as the last.
  quick_crashes_ = now - last_crash_ < std::chrono::seconds(10) ? quick_crashes_ + 1 : 0;
  if (quick_crashes_ >= 3) {
    backoff_ = std::min(std::max(backoff_ * 2, options_.restart_backoff_min),
                        options_.restart_backoff_max);
  } else {
    backoff_ = std::chrono::milliseconds(0);
  }
  last_crash_ = now;
  if (backoff_.count() > 0) {
    log_->warn("keeper: worker crash loop: next worker in {}ms", backoff_.count());
    uv_timer_start(respawn_timer_.get(), &on_timer, uint64_t(backoff_.count()), 0);
    return;
  }
  on_timer(respawn_timer_.get());
}

void Keeper::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<Keeper*>(timer->data);
  if (timer == self->quiesce_timer_.get()) {
    if (self->awaiting_successor_) {
      self->log_->warn("upgrade: the new worker {} did not start within {}ms; it starts after "
                       "the exec",
                       self->successor_->pid, kSuccessorStartTimeout.count());
      self->discard_successor();
      self->quiesce_worker();
      return;
    }
    if (self->worker_) {
      self->log_->error("keeper: worker {} missed its quiesce deadline ({}ms): killing it",
                        self->worker_->pid, self->options_.quiesce_timeout.count());
      self->worker_->killed_at_quiesce_deadline = true;
      ::kill(self->worker_->pid, SIGKILL);
    }
    return;
  }
  // Respawn after a crash. Nothing but the kernel touches the held sockets any more:
  // trim each pair's overhang (DESIGN §3) and let a new worker adopt them live, as a
  // reload does. No packet is dropped, so no peer backs off.
  self->action_started_ = std::chrono::steady_clock::now();
  // An upgrade whose new worker died adopting the kept pairs ends with this one.
  if (self->running_ != Action::kUpgrade) self->running_ = Action::kCrash;
  self->restoring_path_.clear();
  if (Status s = self->spawn_worker("", /*trim_overhangs=*/true); !s) {
    self->log_->error("keeper: cannot start a worker: {}", s.error().message);
    self->respawn_after_crash();
  }
}

void Keeper::stop_loop() {
  if (Status s = lock_.destroy(); !s) log_->warn("keeper: {}", s.error().message);
  pairs_.take_all();  // the worker drained them, or they end here
  uv_stop(&loop_);
}

}  // namespace seamless::proxy
