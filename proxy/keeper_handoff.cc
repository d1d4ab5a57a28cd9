// Keeper: the handoffs — reload, upgrade (checkpoint + exec), the crash checkpoint and
// a restore cut short. See keeper.h.
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdlib>
#include <filesystem>

#include "base/two_threads.h"
#include "config/digest.h"
#include "config/load.h"
#include "config/sha256.h"
#include "metrics/labels.h"
#include "proxy/child_process.h"
#include "proxy/keeper.h"
#include "proxy/kept_sockets.h"
#include "proxy/preflight.h"
#include "proxy/socket_ops.h"
#include "proxy/sockets.h"
#include "proxy/test_hooks.h"
#include "proxy/version.h"
#include "repair/byte_accounting.h"
#include "repair/sys.h"

namespace seamless::proxy {
namespace {

using Clock = std::chrono::steady_clock;

bool in_repair_mode(int fd) {
  int on = 0;
  socklen_t len = sizeof(on);
  return fd >= 0 && ::getsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, &len) == 0 && on != 0;
}

}  // namespace

Result<std::string> read_text_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open " + path);
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read " + path);
    if (n == 0) return text;
    text.append(buf, size_t(n));
  }
}

namespace {

// DESIGN §3: after a crash, bytes a worker sent to `dst` but had not yet discarded
// from `src` are discarded now, and the record is rebuilt from the kernel's counters
// (flags, PROXY header progress, byte totals), since the worker's last record is
// older than its last step.
Status trim_overhang(repair::Sys& sys, const repair::LivePair& live, repair::PairRecord& r) {
  if (live.backend_fd < 0) return {};
  Result<repair::LegCounters> client = repair::read_leg_counters(sys, live.client_fd);
  Result<repair::LegCounters> backend = repair::read_leg_counters(sys, live.backend_fd);
  if (!client) return client.error();
  if (!backend) return backend.error();
  if (backend->state == 2 /* SYN_SENT */) return {};
  const repair::LegBaseline client_base{r.client_off_w, r.client_off_r};
  const repair::LegBaseline backend_base{r.backend_off_w, r.backend_off_r};
  Result<int64_t> up = repair::overhang(*client, client_base, *backend, backend_base, r.header_len);
  Result<int64_t> down = repair::overhang(*backend, backend_base, *client, client_base, 0);
  if (!up) return up.error().context("client->backend");
  if (!down) return down.error().context("backend->client");
  for (auto [fd, n] : {std::pair{live.client_fd, *up}, std::pair{live.backend_fd, *down}}) {
    if (n == 0) continue;
    const ssize_t got = sys.recv(fd, nullptr, size_t(n), MSG_TRUNC | MSG_DONTWAIT);
    if (got != n) return Error::logic("discarding an overhang of " + std::to_string(n) + " bytes");
  }
  const int64_t header = repair::header_written(*backend, backend_base, r.header_len);
  r.header_pending = r.header_len - uint32_t(header);
  r.bytes_client_to_backend = uint64_t(repair::bytes_written(*backend, backend_base) - header);
  r.bytes_backend_to_client = uint64_t(repair::bytes_written(*client, client_base));
  if (repair::counts_fin_sent(backend->state)) r.flags |= repair::kClientFinished;
  if (repair::counts_fin_sent(client->state)) r.flags |= repair::kBackendFinished;
  return {};
}

// An RST to the peer at once, whatever is queued and whoever else holds the fd.
void reset_connection(int fd) {
  if (fd >= 0) SocketOps{}.abort(fd);
}

}  // namespace

// A leg already in CLOSE has no connection left to migrate (its peer reset it, or both
// FINs went through just before the quiesce). Its pair ends here as the worker would
// have ended it: the partner is aborted after a reset, or shut down in order when
// nothing more is owed to it. A leg closed in order that still holds bytes stays: a
// new worker adopting it live reads them, forwards them and passes the EOF on, as the
// old one would have; a dump carries them in the record (repair/checkpoint.h).
void Keeper::settle_closed_pairs(std::vector<repair::LivePair>* live) {
  repair::Sys sys;
  // The legs surveyed first, on both cores (~14 ms for 10,000 sockets on one, inside
  // the lock), in the order of pairs_; a leg the survey cannot read stays unsurveyed:
  // the checkpoint asks it and reports.
  std::vector<std::array<repair::LegSurvey, 2>> surveys;
  if (live) {
    live->reserve(pairs_.size());
    std::vector<const HeldPair*> order;
    order.reserve(pairs_.size());
    for (const auto& [id, p] : pairs_.pairs()) order.push_back(&p);
    surveys.resize(order.size());
    split_over_two_threads(order.size(), 32, [&](size_t begin, size_t end) {
      repair::Sys own_sys;
      for (size_t i = begin; i < end; ++i) {
        for (const auto& [fd, leg] : {std::pair{order[i]->client.get(), &surveys[i][0]},
                                      std::pair{order[i]->backend.get(), &surveys[i][1]}}) {
          Result<repair::LegSurvey> surveyed = repair::survey_leg(own_sys, fd);
          if (surveyed) *leg = *surveyed;
        }
      }
    });
  }
  size_t index = 0;
  for (auto it = pairs_.pairs().begin(); it != pairs_.pairs().end(); ++index) {
    HeldPair& p = it->second;
    repair::LegSurvey client_leg, backend_leg;
    bool client_closed, backend_closed;
    if (live) {
      client_leg = surveys[index][0];
      backend_leg = surveys[index][1];
      client_closed = client_leg.state == repair::LegState::kClosed;
      backend_closed = backend_leg.state == repair::LegState::kClosed;
    } else {
      client_closed = repair::leg_closed(sys, p.client.get());
      backend_closed = repair::leg_closed(sys, p.backend.get());
    }
    auto keep = [&] {
      if (live) {
        live->push_back(
            repair::LivePair{p.client.get(), p.backend.get(), p.record, client_leg, backend_leg});
      }
      ++it;
    };
    if (!client_closed && !backend_closed) {
      keep();
      continue;
    }
    const int closed = client_closed ? p.client.get() : p.backend.get();
    const int partner = client_closed ? p.backend.get() : p.client.get();
    const int error = SocketOps{}.socket_error(closed);
    int unread = 0;
    ::ioctl(closed, SIOCINQ, &unread);
    if (error == 0 && unread > 0 && !(client_closed && backend_closed)) {
      keep();
      continue;
    }
    const bool abort = error != 0 || unread > 0;
    if (partner >= 0 && !(client_closed && backend_closed)) {
      if (abort) {
        reset_connection(partner);
      } else {
        ::shutdown(partner, SHUT_WR);
      }
    }
    log_->info("pair {}: {} leg already closed{}; not migrated, partner {}", it->first,
               client_closed ? "client" : "backend", error ? " by reset" : "",
               abort ? "aborted" : "shut down");
    metrics_.record_handoff_connections(abort ? metrics::HandoffConnectionResult::kAborted
                                              : metrics::HandoffConnectionResult::kClosed);
    it = pairs_.pairs().erase(it);
  }
}

Status Keeper::trim_for_adoption(repair::Sys& sys, HeldPair& pair) {
  repair::LivePair live{pair.client.get(), pair.backend.get(), pair.record, {}, {}};
  repair::PairRecord record = pair.record;
  Status trimmed = trim_overhang(sys, live, record);
  if (!trimmed) {
    // Counters that keep moving under heavy traffic: read them again with the pair's
    // flows locked, which stops every packet that could move them.
    Result<std::vector<repair::Flow>> flows = repair::lockable_flows(sys, {&live, 1});
    if (!flows) return flows.error();
    if (Status locked = lock_.lock(*flows, config_.handoff.lock_timeout); !locked) {
      return locked.error().context(trimmed.error().message + "; then locking its flows");
    }
    record = pair.record;
    trimmed = trim_overhang(sys, live, record);
    if (Status s = lock_.unlock(*flows); !s) log_->error("keeper: {}", s.error().message);
    if (!trimmed) return trimmed;
  }
  pair.record = std::move(record);
  return {};
}

// The live pairs the new worker adopts; the keeper keeps its own duplicates. A pair
// that cannot be trimmed would repeat or lose bytes: it is reset instead.
void Keeper::hand_pairs_to_worker(bool trim_overhangs, const std::string& restore_path) {
  if (trim_overhangs) settle_closed_pairs();
  repair::Sys sys;
  // kMaxBatchRecords pairs to a message: one message a pair took ~34 us at 5,000 pairs
  // (each send waits for room in a channel that queues 10 packets, and the new worker
  // reads them between rounds of forwarding for the pairs it already has).
  bool channel_failed = false;
  Message batch = make_message(MessageType::kAdoptBatch);
  std::vector<int> batch_fds;
  auto send_batch = [&] {
    if (batch.records.empty() || channel_failed) return;
    if (Status s = worker_->channel.send(batch, batch_fds); !s) {
      log_->error("keeper: handing pairs to worker {}: {}", worker_->pid, s.error().message);
      channel_failed = true;
    }
    batch.records.clear();
    batch.record_fds.clear();
    batch_fds.clear();
  };
  auto send_adopt = [&](const HeldPair& pair) {
    batch.records.push_back(pair.record);
    batch.record_fds.push_back(pair.backend ? 2 : 1);
    batch_fds.push_back(pair.client.get());
    if (pair.backend) batch_fds.push_back(pair.backend.get());
    if (batch.records.size() == kMaxBatchRecords) send_batch();
    return !channel_failed;
  };
  for (auto it = pairs_.pairs().begin(); it != pairs_.pairs().end();) {
    auto& [id, pair] = *it;
    if (trim_overhangs) {
      if (Status s = trim_for_adoption(sys, pair); !s) {
        log_->error("pair {}: trimming the overhang: {}; resetting it", id, s.error().message);
        reset_connection(pair.client.get());
        reset_connection(pair.backend.get());
        metrics_.record_handoff_connections(metrics::HandoffConnectionResult::kAborted);
        it = pairs_.pairs().erase(it);
        continue;
      }
    }
    if (!send_adopt(pair)) break;
    ++it;
  }
  // After an upgrade's exec: the kept pairs.
  take_kept_pairs([&](HeldPair& pair) { (void)send_adopt(pair); });
  send_batch();
  (void)worker_->channel.send(
      make_message(MessageType::kAdoptEnd, 0, std::nullopt, restore_path));
  unsent_clients_.clear();  // they were among the adopted
}

uint64_t Keeper::queued_bytes() const {
  uint64_t total = 0;
  for (const repair::LivePair& p : pairs_.live_pairs()) {
    for (int fd : {p.client_fd, p.backend_fd}) {
      int n = 0;
      if (fd >= 0 && ::ioctl(fd, SIOCINQ, &n) == 0) total += uint64_t(n);
      if (fd >= 0 && ::ioctl(fd, SIOCOUTQ, &n) == 0) total += uint64_t(n);
    }
  }
  return total;
}

void Keeper::begin_reload() {
  ctl_waiters_.begin(CtlWaiters::Kind::kReload);
  Result<std::string> text = read_text_file(config_path_);
  config::ConfigParse parsed =
      text ? config::parse_config(*text, config_path_) : config::ConfigParse{};
  if (!text || !parsed.config) {
    log_->error("reload refused, nothing changed: {}",
                text ? "the config has errors" : text.error().message);
    for (const std::string& e : parsed.errors) log_->error("  {}", e);
    metrics_.record_handoff(metrics::HandoffReason::kReload,
                            metrics::HandoffResult::kPreflightFailed);
    std::string why = text ? "the config has errors" : text.error().message;
    for (const std::string& e : parsed.errors) why += "\n" + e;
    ctl_finished(false, "reload refused, nothing changed: " + why);
    return;
  }
  // Bind what is new before anything stops, so that a port in use changes nothing.
  std::map<std::string, UniqueFd> opened;
  for (const config::Service& service : parsed.config->services) {
    auto it = listener_addresses_.find(service.name);
    if (it != listener_addresses_.end() && it->second == service.listen.to_string()) continue;
    Result<UniqueFd> fd = open_listener(service.listen, service.v6only);
    if (!fd) {
      log_->error("reload refused, nothing changed: service {}: {}", service.name,
                  fd.error().message);
      metrics_.record_handoff(metrics::HandoffReason::kReload,
                              metrics::HandoffResult::kPreflightFailed);
      ctl_finished(false, "reload refused, nothing changed: service " + service.name + ": " +
                              fd.error().message);
      return;
    }
    opened[service.name] = std::move(*fd);
  }
  pending_listeners_ = std::move(opened);
  pending_config_ = std::move(*parsed.config);
  pending_config_text_ = std::move(*text);
  running_ = Action::kReload;
  update_accepting();  // new clients wait in the backlog for the new worker
  action_started_ = Clock::now();
  log_->info("reload: quiescing worker {}", worker_->pid);
  (void)worker_->channel.send(make_message(MessageType::kQuiesce));
  uv_timer_start(quiesce_timer_.get(), &on_timer, uint64_t(options_.quiesce_timeout.count()), 0);
}

void Keeper::finish_reload() {
  // Listeners of services that left or moved close now; new ones take their place.
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    bool keep = false;
    for (const config::Service& s : pending_config_->services) {
      keep = keep || (s.name == it->first && listener_addresses_[s.name] == s.listen.to_string());
    }
    if (keep) {
      ++it;
    } else {
      listener_addresses_.erase(it->first);
      it = listeners_.erase(it);
    }
  }
  for (auto& [name, fd] : pending_listeners_) {
    for (const config::Service& s : pending_config_->services) {
      if (s.name == name) add_listener(name, std::move(fd), s.listen.to_string());
    }
  }
  pending_listeners_.clear();
  if (stopping_) listeners_.clear();  // SIGTERM came while quiescing: stay closed
  config_ = std::move(*pending_config_);
  config_text_ = std::move(pending_config_text_);
  pending_config_.reset();
  if (Status s = spawn_worker(""); !s) {
    log_->error("reload: cannot start a worker: {}", s.error().message);
    ctl_finished(false, "reload: cannot start a worker: " + s.error().message);
    running_ = Action::kNone;
    respawn_after_crash();
  }
}

void Keeper::begin_upgrade() {
  ctl_waiters_.begin(CtlWaiters::Kind::kUpgrade);
  action_started_ = Clock::now();
  const std::string binary = inherited_.binary_path;
  PreflightRequest request{binary, config_path_, config_.handoff.dir, queued_bytes(),
                           options_.preflight_timeout};
  Result<CheckedBinary> exe = preflight(request);
  if (!exe) {
    log_->error("upgrade refused, nothing changed: preflight: {}", exe.error().message);
    const bool no_room = exe.error().code == ENOSPC || exe.error().code == ENOMEM;
    metrics_.record_handoff(
        metrics::HandoffReason::kUpgrade,
        no_room ? metrics::HandoffResult::kNoSpace : metrics::HandoffResult::kPreflightFailed);
    ctl_finished(false, "upgrade refused, nothing changed: preflight: " + exe.error().message);
    return;
  }
  upgrade_binary_ = std::move(exe->exe);
  upgrade_keeps_sockets_ = exe->takes_kept_sockets && !kept_sockets_off_for_test();
  start_successor();
  running_ = Action::kUpgrade;
  update_accepting();  // new clients wait in the backlog for the new image
  log_->info("upgrade: {} passed preflight", binary);
  if (!await_successor_start()) quiesce_worker();
}

// The flows are locked while the old worker still forwards, then it quiesces: what
// reached the sockets before the lock is delivered by it, and a segment the lock drops
// is resent by its peer one retransmission timeout (200 ms and more) after it was
// sent, which is where the clients' stall ends in drop mode. Locked after the
// quiesce, the time to quiesce, survey the legs and commit the lock (~35 ms at 5,000
// pairs) came on top of that timeout.
void Keeper::prelock_flows() {
  repair::Sys sys;
  std::vector<repair::Flow> flows;
  flows.reserve(2 * pairs_.size());
  for (const auto& [id, p] : pairs_.pairs()) {
    for (int fd : {p.client.get(), p.backend.get()}) {
      // A leg without a peer (closed, or connecting) has no flow to lock.
      if (Result<repair::Flow> flow = repair::flow_of_socket(sys, fd); flow) {
        flows.push_back(*flow);
      }
    }
  }
  std::sort(flows.begin(), flows.end());
  if (Status s = lock_.lock(flows, config_.handoff.lock_timeout); !s) {
    log_->warn("upgrade: locking the flows after the quiesce instead: {}", s.error().message);
    return;
  }
  prelocked_ = std::move(flows);
}

void Keeper::unlock_prelocked() {
  if (prelocked_.empty()) return;
  if (Status s = lock_.unlock(prelocked_); !s) log_->error("upgrade: {}", s.error().message);
  prelocked_.clear();
}

void Keeper::quiesce_worker() {
  prelock_flows();
  log_->info("upgrade: quiescing worker {} ({} pairs)", worker_->pid, pairs_.size());
  (void)worker_->channel.send(make_message(MessageType::kQuiesce));
  uv_timer_start(quiesce_timer_.get(), &on_timer, uint64_t(options_.quiesce_timeout.count()), 0);
}

bool Keeper::await_successor_start() {
  if (!successor_) return false;
  UvHandle<uv_poll_t>& poll = successor_->channel_poll;
  if (poll.init(uv_poll_init(&loop_, poll.get(), successor_->channel.fd())) != 0) return false;
  poll.get()->data = this;
  uv_poll_start(poll.get(), UV_READABLE | UV_DISCONNECT, &on_successor_channel);
  awaiting_successor_ = true;
  uv_timer_start(quiesce_timer_.get(), &on_timer, uint64_t(kSuccessorStartTimeout.count()), 0);
  return true;
}

void Keeper::on_successor_channel(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<Keeper*>(handle->data);
  if (status < 0) {
    self->log_->warn("upgrade: the new worker's channel failed ({}); it starts after the exec",
                     uv_strerror(status));
    self->discard_successor();
    self->quiesce_worker();
    return;
  }
  self->successor_started();
}

void Keeper::successor_started() {
  Result<std::optional<Message>> m = successor_->channel.receive(/*wait=*/false);
  if (!m && m.error().code == EAGAIN) return;
  uv_timer_stop(quiesce_timer_.get());
  if (!m || !*m || (**m).type != MessageType::kStarted) {
    log_->warn("upgrade: the new worker {} did not start ({}); it starts after the exec",
               successor_->pid, !m ? m.error().message : !*m ? "it exited" : to_string((**m).type));
    discard_successor();
  } else {
    log_->info("upgrade: new worker {} started", successor_->pid);
    awaiting_successor_ = false;
    successor_->channel_poll.close(nullptr);
  }
  quiesce_worker();
}

namespace {

metrics::HandoffResult result_of(repair::CheckpointStep step) {
  switch (step) {
    case repair::CheckpointStep::kLock:
      return metrics::HandoffResult::kLockFailed;
    case repair::CheckpointStep::kDump:
      return metrics::HandoffResult::kDumpFailed;
    case repair::CheckpointStep::kWrite:
      return metrics::HandoffResult::kWriteFailed;
  }
  return metrics::HandoffResult::kDumpFailed;
}

}  // namespace

Result<std::string> Keeper::checkpoint(metrics::HandoffResult* failed) {
  std::vector<repair::LivePair> live;
  settle_closed_pairs(&live);
  repair::Sys sys;
  repair::CheckpointOptions options;
  options.dir = config_.handoff.dir;
  options.lock_timeout = config_.handoff.lock_timeout;
  options.header.writer_version = kVersion;
  options.header.config_digest = config::config_digest(config_);
  options.header.created_at_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count();
  options.before_verify = corrupt_handoff_file_hook(log_);
  repair::Sys helper_sys;  // the second core dumps every other pair
  options.helper_sys = &helper_sys;
  options.sockets_live_on = running_ == Action::kUpgrade && upgrade_keeps_sockets_;
  options.locked_before = prelocked_;
  const auto started = Clock::now();
  repair::CheckpointStep step = repair::CheckpointStep::kDump;
  Result<repair::CheckpointResult> result =
      repair::checkpoint_pairs(sys, lock_, live, options, &step);
  prelocked_.clear();  // locked still with the others, or unlocked with them on failure
  if (!result) {
    *failed = result_of(step);
    return result.error();
  }
  metrics_.observe_phase(metrics::HandoffPhase::kLock, result->lock_time);
  metrics_.observe_phase(metrics::HandoffPhase::kDump, result->dump_time);
  metrics_.observe_phase(metrics::HandoffPhase::kWrite, result->write_time);
  metrics_.set_queued_bytes(result->queued_bytes);
  metrics_.set_locked_flows(int64_t(result->flows.size()));
  log_->info("checkpoint: {} pairs, {} queued bytes, {} flows locked in {} ms", result->pairs,
             result->queued_bytes, result->flows.size(),
             std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  return result->path;
}

void Keeper::finish_upgrade() {
  if (stopping_) {
    // SIGTERM came while quiescing: the new image would not know it. Drain here instead.
    log_->info("upgrade abandoned: stopping");
    ctl_finished(false, "upgrade abandoned: seamless is stopping");
    running_ = Action::kNone;
    end_upgrade_attempt();
    if (Status s = spawn_worker(""); !s) stop_loop();
    return;
  }
  fill_handoff_dir_hook(log_);
  metrics::HandoffResult failed = metrics::HandoffResult::kDumpFailed;
  Result<std::string> path = checkpoint(&failed);
  if (!path) {
    log_->error("upgrade failed, carrying on unchanged: {}", path.error().message);
    metrics_.record_handoff(metrics::HandoffReason::kUpgrade, failed);
    ctl_finished(false, "upgrade failed, carrying on unchanged: " + path.error().message);
    running_ = Action::kNone;
    end_upgrade_attempt();
    if (Status s = spawn_worker(""); !s) respawn_after_crash();
    return;
  }
  exec_new_image(*path);
}

void Keeper::start_successor() {
  Result<std::string> text = read_text_file(config_path_);  // what the new image will read
  if (!text) {
    log_->warn("upgrade: the new worker starts after the exec instead: {}", text.error().message);
    return;
  }
  Result<std::unique_ptr<WorkerChild>> child = launch_worker(upgrade_binary_->get(), *text);
  if (!child) {
    log_->warn("upgrade: the new worker starts after the exec instead: {}", child.error().message);
    return;
  }
  successor_ = std::move(*child);
  successor_config_sha_ = config::sha256_hex(*text);
}

void Keeper::discard_successor() {
  if (awaiting_successor_) uv_timer_stop(quiesce_timer_.get());
  awaiting_successor_ = false;
  if (!successor_) return;
  ::kill(successor_->pid, SIGKILL);
  (void)reap_child(successor_->pid);
  successor_.reset();
}

void Keeper::end_upgrade_attempt() {
  unlock_prelocked();
  discard_successor();
  upgrade_binary_.reset();
  upgrade_keeps_sockets_ = false;
}

Status Keeper::adopt_successor(const std::string& restore_path) {
  auto worker = std::make_unique<WorkerChild>();
  worker->pid = inherited_.successor_pid;
  worker->pidfd = UniqueFd(inherited_.successor_pidfd);
  worker->channel = ControlChannel(UniqueFd(inherited_.successor_channel));
  inherited_.successor_pid = -1;
  worker_ = std::move(worker);
  if (inherited_.successor_config_sha != config::sha256_hex(config_text_)) {
    // Its config is not the one read here (the file changed during the upgrade).
    log_->info("keeper: the upgrade's worker {} has another config: starting a new one",
               worker_->pid);
    ::kill(worker_->pid, SIGKILL);
    (void)reap_child(worker_->pid);
    worker_.reset();
    return {};  // run() spawns one
  }
  hand_pairs_to_worker(/*trim_overhangs=*/false, restore_path);
  return watch_worker();
}

void Keeper::exec_new_image(const std::string& handoff_path) {
  reap_leaving_worker();  // the new image would not know this child
  // The dumped sockets (in repair mode) go on to the new image if it takes them
  // (kept_sockets.h); otherwise they die with this one, silently.
  UniqueFd kept;
  if (upgrade_keeps_sockets_) {
    Result<UniqueFd> memfd = write_kept_sockets(pairs_.pairs());
    if (memfd) {
      kept = std::move(*memfd);
    } else {
      log_->warn("upgrade: the new image restores every pair from the file: {}",
                 memfd.error().message);
    }
  }
  // Every fd the new image inherits (the control socket's are ctl_'s); close-on-exec
  // again if the exec fails.
  std::vector<int> passed_on = {segment_.fd(), lock_.netlink_fd()};
  passed_on.reserve(2 * pairs_.size() + 16);
  for (const auto& [id, p] : pairs_.pairs()) {
    for (int fd : {p.client.get(), p.backend.get()}) {
      if (fd < 0) continue;
      if (kept) {
        passed_on.push_back(fd);
      } else {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
    }
  }
  if (kept) passed_on.push_back(kept.get());
  if (hold_) passed_on.push_back(hold_->fd());
  if (successor_) {
    passed_on.push_back(successor_->pidfd.get());
    passed_on.push_back(successor_->channel.fd());
  }
  std::string listen_fds;
  for (const auto& [service, listener] : listeners_) {
    passed_on.push_back(listener->fd());
    listen_fds += (listen_fds.empty() ? "" : ",") + service + "=" + std::to_string(listener->fd());
  }
  for (int fd : passed_on) ::fcntl(fd, F_SETFD, 0);
  if (kept && lose_kept_sockets_for_test()) {
    const std::vector<repair::LivePair> live = pairs_.live_pairs();
    for (size_t i = 0; i < live.size() && i < 2; ++i)
      ::fcntl(live[i].client_fd, F_SETFD, FD_CLOEXEC);
  }
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  std::vector<std::string> env = {
      "SEAMLESS_LISTEN_FDS=" + listen_fds,
      "SEAMLESS_HANDOFF=" + handoff_path,
      "SEAMLESS_BINARY=" + inherited_.binary_path,
      "SEAMLESS_EXEC_STARTED_NS=" + std::to_string(int64_t(now.tv_sec) * 1000000000 + now.tv_nsec),
      // steady_clock is CLOCK_MONOTONIC: the new image times the whole upgrade with it.
      "SEAMLESS_UPGRADE_STARTED_NS=" +
          std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                             action_started_.time_since_epoch())
                             .count()),
      std::string(metrics::kFdEnvVar) + "=" + std::to_string(segment_.fd()),
      "SEAMLESS_FLOW_LOCK_FD=" + std::to_string(lock_.netlink_fd()),
  };
  if (hold_) env.push_back(std::string(repair::kPacketHoldEnvVar) + "=" + hold_->describe_for_child());
  if (kept) env.push_back(std::string(kKeptSocketsEnvVar) + "=" + std::to_string(kept.get()));
  if (successor_) {
    env.push_back("SEAMLESS_SUCCESSOR=" + std::to_string(successor_->pid) + "," +
                  std::to_string(successor_->pidfd.get()) + "," +
                  std::to_string(successor_->channel.fd()) + "," + successor_config_sha_);
  }
  // The control socket and the clients waiting for this upgrade go on to the new image.
  if (ctl_) {
    for (std::string& e : ctl_->prepare_exec()) env.push_back(std::move(e));
  }
  std::vector<std::string> env_strings = merged_environment(env);
  std::vector<std::string> argv_strings = {inherited_.binary_path, "run", "--config", config_path_};
  std::vector<char*> argv, envp;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  // Blocked across the exec; the new keeper unblocks them once it handles them.
  sigset_t set, old;
  sigemptyset(&set);
  for (int sig : {SIGHUP, SIGUSR2, SIGTERM, SIGINT, SIGCHLD}) sigaddset(&set, sig);
  ::sigprocmask(SIG_BLOCK, &set, &old);
  log_->info("upgrade: exec {} with {} pairs in {}{}", inherited_.binary_path, pairs_.size(),
             handoff_path, kept ? ", their sockets kept" : "");
  log_->flush();
  if (!exec_fails_for_test()) {
    ::syscall(SYS_execveat, upgrade_binary_->get(), "", argv.data(), envp.data(), AT_EMPTY_PATH);
  } else {
    errno = ENOEXEC;
  }
  const Error error = Error::from_errno("execveat " + inherited_.binary_path);
  if (ctl_) ctl_->exec_failed();
  // Still here: every fd is open. Undo the checkpoint and carry on with the live sockets
  // (never restore from the file while the originals live).
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  for (int fd : passed_on) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  std::vector<repair::Flow> flows;
  repair::Sys sys;
  for (const repair::LivePair& p : pairs_.live_pairs()) {
    for (int fd : {p.client_fd, p.backend_fd}) {
      if (fd < 0 || !in_repair_mode(fd)) continue;
      if (Result<repair::Flow> flow = repair::flow_of_socket(sys, fd); flow) flows.push_back(*flow);
      int off = 0;
      ::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
    }
  }
  if (Status s = lock_.unlock(flows); !s) log_->error("upgrade: {}", s.error().message);
  (void)repair::remove_handoff_file(handoff_path);
  metrics_.set_locked_flows(0);
  log_->error("upgrade failed, carrying on unchanged: {}", error.message);
  metrics_.record_handoff(metrics::HandoffReason::kUpgrade, metrics::HandoffResult::kExecFailed);
  ctl_finished(false, "upgrade failed, carrying on unchanged: " + error.message);
  running_ = Action::kNone;
  end_upgrade_attempt();
  if (Status s = spawn_worker(""); !s) respawn_after_crash();
}

namespace {

// Every fd of this process that is a TCP socket in repair mode.
std::vector<int> sockets_in_repair_mode() {
  std::vector<int> fds;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    if (fd > 2 && in_repair_mode(fd)) fds.push_back(fd);
  }
  return fds;
}

}  // namespace

std::string Keeper::find_kept_sockets(const std::string& handoff_path) {
  const UniqueFd memfd = std::move(inherited_.kept_sockets);
  Result<KeptPairs> kept = read_kept_sockets(memfd.get());
  if (!kept) {
    // Which fd is which is unknown: the dumped ones close (silently, in repair mode),
    // so that the file's restore finds their 4-tuples free.
    const std::vector<int> dumped = sockets_in_repair_mode();
    for (int fd : dumped) ::close(fd);
    log_->error("keeper: {}; closed {} sockets in repair mode, every pair is restored from {}",
                kept.error().message, dumped.size(), handoff_path);
    return handoff_path;
  }
  kept_pairs_ = std::move(kept->pairs);
  log_->info("keeper: {} pairs' sockets came through the exec; {} pairs to restore from the file",
             kept_pairs_.size(), kept->unmatched.size());
  if (!kept->unmatched.empty()) return handoff_path;
  kept_handoff_file_ = handoff_path;  // removed once every kept pair is taken
  return "";
}

void Keeper::take_kept_pairs(const std::function<void(HeldPair& pair)>& adopt) {
  if (kept_pairs_.empty() && kept_handoff_file_.empty()) return;
  const auto started = Clock::now();
  std::vector<Message> kept = std::move(kept_pairs_);
  // When every pair came through, every locked flow is theirs: one unlock that names
  // none (unlock_all) instead of 10,000 flows read from their sockets. Otherwise the
  // kept pairs' flows are unlocked by name and the file's restore unlocks the rest.
  const bool every_pair_kept = !kept_handoff_file_.empty();
  repair::Sys sys;
  std::vector<repair::Flow> flows;
  if (!every_pair_kept) {
    for (const Message& m : kept) {
      for (const UniqueFd& fd : m.fds) {
        if (Result<repair::Flow> flow = repair::flow_of_socket(sys, fd.get()); flow) {
          flows.push_back(*flow);
        }
      }
    }
  }
  // Out of repair mode before the unlock: a socket still in it could take the peer's
  // packets with its send queue selected for repair (TCP_REPAIR.md). Without the
  // window probe, whose answer would meet the lock. On both cores: ~10 ms for 10,000
  // sockets on one.
  split_over_two_threads(kept.size(), 32, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      for (const UniqueFd& fd : kept[i].fds) {
        int off = TCP_REPAIR_OFF_NO_WP;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
      }
    }
  });
  // All at once, before any pair is handed over: each unlock is a transaction that
  // took ~5 ms, so unlocking batch by batch as the worker adopted them cost ~100 ms at
  // 5,000 pairs, and the last batch waited for all of them. The kernel ACKs what the
  // peers send meanwhile and queues it for the worker.
  const auto unlock_started = Clock::now();
  Status unlocked;
  if (every_pair_kept) {
    unlocked = lock_.unlock_all();
  } else {
    // Only these flows' held packets: the others' would only be queued again.
    if (hold_) lock_.release_on_unlock(&*hold_, repair::ReleaseOnUnlock::kTheirPackets);
    unlocked = lock_.unlock(flows);
    if (hold_) lock_.release_on_unlock(&*hold_, repair::ReleaseOnUnlock::kAllPackets);
  }
  if (!unlocked) log_->error("keeper: {}", unlocked.error().message);
  const auto unlocking = Clock::now() - unlock_started;
  for (Message& m : kept) {
    const uint64_t id = m.pair_id;
    if (Status s = pairs_.apply(m); !s) {
      log_->error("keeper: {}", s.error().message);
      continue;
    }
    adopt(pairs_.pairs().at(id));
  }
  metrics_.record_handoff_connections(metrics::HandoffConnectionResult::kRestored, kept.size());
  log_->info(
      "keeper: took {} pairs' sockets through the exec: out of repair mode, {}, handed "
      "over in {} ms",
      kept.size(),
      every_pair_kept ? "every flow unlocked" : std::to_string(flows.size()) + " flows unlocked",
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  if (kept_handoff_file_.empty()) return;  // the worker restores the rest and reports it
  metrics_.observe_phase(metrics::HandoffPhase::kUnlock, unlocking);
  const std::string path = std::exchange(kept_handoff_file_, std::string());
  if (Status s = repair::remove_handoff_file(path); !s) log_->warn("{}", s.error().message);
}

void Keeper::restore_done() {
  const std::string path = std::exchange(restoring_path_, std::string());
  if (Status s = path.empty() ? Status{} : repair::remove_handoff_file(path); !s) {
    log_->warn("{}", s.error().message);
  }
  metrics_.set_locked_flows(lock_.count_locked() ? int64_t(*lock_.count_locked()) : 0);
  for (auto& [id, pair] : pairs_.pairs()) pair.restoring = false;
  metrics_.observe_phase(metrics::HandoffPhase::kRestore, Clock::now() - action_started_);
}

void Keeper::handoff_done(const std::string& summary) {
  const pid_t worker = worker_->pid;
  const auto [reason, done] =
      running_ == Action::kUpgrade
          ? std::pair{metrics::HandoffReason::kUpgrade, "upgrade handoff done"}
      : running_ == Action::kReload
          ? std::pair{metrics::HandoffReason::kReload, "reload done"}
          : std::pair{metrics::HandoffReason::kCrash, "crash handoff done"};
  metrics_.record_handoff(reason, metrics::HandoffResult::kSuccess);
  // An upgrade began in the image before the exec.
  const Clock::time_point started =
      reason == metrics::HandoffReason::kUpgrade && inherited_.upgrade_started_ns > 0
          ? Clock::time_point(std::chrono::nanoseconds(inherited_.upgrade_started_ns))
          : action_started_;
  metrics_.observe_phase(metrics::HandoffPhase::kTotal, Clock::now() - started);
  log_->info("{}: worker {} {}", done, worker, summary);
  running_ = Action::kNone;
  if (reason == metrics::HandoffReason::kUpgrade) {
    ctl_finished(true, "upgrade done: keeper " + std::to_string(::getpid()) + " generation " +
                           std::to_string(metrics_.generation()) + ", worker " +
                           std::to_string(worker) + " " + summary);
  } else if (reason == metrics::HandoffReason::kReload) {
    ctl_finished(true, "reload done: worker " + std::to_string(worker) + " " + summary);
  }
}

// A worker died while restoring: pairs it handed over and took out of repair mode are
// live (their flows are unlocked here, whatever the worker got to); pairs still in
// repair mode close silently and, with their flows still locked, are restored again
// from the file by the next worker, which skips the live ones.
void Keeper::recover_from_restore_crash() {
  repair::Sys sys;
  std::vector<repair::Flow> live_flows;
  size_t dropped = 0;
  for (auto it = pairs_.pairs().begin(); it != pairs_.pairs().end();) {
    HeldPair& p = it->second;
    if (!p.restoring) {
      ++it;
      continue;
    }
    if (in_repair_mode(p.client.get()) || in_repair_mode(p.backend.get())) {
      // Died between its two legs: the one already out of repair mode goes back in, so
      // that closing it is silent too (a FIN would reach its peer, and its socket
      // would hold the 4-tuple the file's restore needs). Its flows are still locked:
      // whatever it sent since, the restored socket sends again under the same
      // sequence numbers.
      for (int fd : {p.client.get(), p.backend.get()}) {
        int on = 1;
        if (fd >= 0 && !in_repair_mode(fd))
          ::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on));
      }
      it = pairs_.pairs().erase(it);
      ++dropped;
      continue;
    }
    for (int fd : {p.client.get(), p.backend.get()}) {
      if (fd < 0) continue;
      if (Result<repair::Flow> flow = repair::flow_of_socket(sys, fd); flow) {
        live_flows.push_back(*flow);
      }
    }
    if (!p.rebased) {
      // It died before it sent the restored sockets' baselines; it forwards nothing
      // before it has sent them all, so they are still to be had from the counters.
      repair::rebase_restored_pair(sys, p.client.get(), p.backend.get(), p.record);
      p.rebased = true;
    }
    p.restoring = false;
    ++it;
  }
  if (Status s = lock_.unlock(live_flows); !s) log_->error("keeper: {}", s.error().message);
  log_->warn("keeper: the restoring worker died: {} pairs live, {} to restore again from {}",
             pairs_.size(), dropped, restoring_path_);
  if (Status s = spawn_worker(restoring_path_); !s) {
    log_->error("keeper: cannot start a worker: {}", s.error().message);
  }
}

}  // namespace seamless::proxy
