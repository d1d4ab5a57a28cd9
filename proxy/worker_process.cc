#include "proxy/worker_process.h"

#include <fcntl.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <unordered_set>

#include "config/load.h"
#include "metrics/metrics.h"
#include "metrics/segment.h"
#include "metrics/server.h"
#include "proxy/keeper_link.h"
#include "proxy/socket_ops.h"
#include "proxy/test_hooks.h"
#include "proxy/worker.h"
#include "proxy/worker_restore.h"
#include "repair/byte_accounting.h"
#include "repair/checkpoint.h"
#include "repair/flow_lock.h"
#include "repair/packet_hold.h"
#include "repair/sys.h"

namespace seamless::proxy {
namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitConfigError = 2;

// The keeper blocks signals around its exec; a worker starts clean.
void reset_signals() {
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_UNBLOCK, &all, nullptr);
  for (int sig : {SIGHUP, SIGUSR2, SIGTERM, SIGINT, SIGCHLD}) std::signal(sig, SIG_DFL);
  std::signal(SIGPIPE, SIG_IGN);
}

Result<std::string> read_all(int fd) {
  std::string text;
  char buf[8192];
  off_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof(buf), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read config");
    if (n == 0) return text;
    text.append(buf, size_t(n));
    offset += n;
  }
}

// Fault injection for the integration tests: SEAMLESS_TEST_KILLS_FILE=<file> holding a
// number K > 0 makes the worker SIGKILL itself between a send and its discard (DESIGN
// §3: the overhang the keeper must trim) after a few thousand sends, and write K-1
// back first, so that exactly K workers die this way.
class KillBetweenSendAndDiscard final : public SocketOps {
 public:
  static std::unique_ptr<KillBetweenSendAndDiscard> from_environment() {
    const char* path = std::getenv("SEAMLESS_TEST_KILLS_FILE");
    if (path == nullptr) return nullptr;
    int left = 0;
    if (FILE* f = std::fopen(path, "r")) {
      if (std::fscanf(f, "%d", &left) != 1) left = 0;
      std::fclose(f);
    }
    if (left <= 0) return nullptr;
    auto ops = std::make_unique<KillBetweenSendAndDiscard>();
    ops->path_ = path;
    ops->left_ = left;
    ops->countdown_ = 500 + ::getpid() % 4000;  // varies from worker to worker
    return ops;
  }
  ssize_t send(int fd, const void* buf, size_t len, int flags) override {
    const ssize_t n = SocketOps::send(fd, buf, len, flags);
    if (n > 0 && --countdown_ == 0) {
      if (FILE* f = std::fopen(path_.c_str(), "w")) {
        std::fprintf(f, "%d\n", left_ - 1);
        std::fclose(f);
      }
      ::raise(SIGKILL);
    }
    return n;
  }

 private:
  std::string path_;
  int left_ = 0;
  long countdown_ = 0;
};

// The keeper's messages while serving.
struct ControlWatch {
  Worker* worker = nullptr;
  ControlChannel* channel = nullptr;
  KeeperLink* link = nullptr;
  Logger log;
  UvHandle<uv_poll_t> poll;
  const config::Config* config = nullptr;
  metrics::Metrics* metrics = nullptr;
  bool adopting = true;  // kAdoptBatch... kAdoptEnd still coming
  std::unordered_set<uint64_t> adopted;
  // The keeper's packet hold (repair::kPacketHoldEnvVar), if it has one: a restore's
  // unlocks release what peers sent into the lock. Before restore_locks, which
  // borrow it.
  std::optional<repair::PacketHold> hold;
  // One per restore thread, kept open from the restore on: closing a netfilter socket
  // waits for the grace period of its last transaction (2 to 15 ms measured), and the
  // restore's last unlock has just committed while the unlocked peers wait to be served.
  std::vector<repair::FlowLock> restore_locks;
  // Once no other worker can hold the /metrics port: the upgrade's worker starts
  // while the old one still serves.
  std::function<void()> start_metrics_server;
};

void announce_ready(ControlWatch& watch, const std::string& summary) {
  watch.worker->log_ready();
  watch.log->info("worker {} ready: {}", ::getpid(), summary);
  watch.link->send(make_message(MessageType::kReady, 0, std::nullopt, summary));
}

// `fds`: the pair's client, then its backend if it has one.
void adopt_from_keeper(ControlWatch& watch, repair::PairRecord& record, std::span<UniqueFd> fds) {
  crash_here_once_for_tests("SEAMLESS_TEST_CRASH_ON_ADOPT");
  if (!watch.adopting || fds.empty()) {
    watch.log->error("control channel: an unexpected adoption of pair {}", record.id);
    watch.link->send(make_message(MessageType::kPairClosed, record.id));
    return;
  }
  DetachedPair pair;
  pair.record = std::move(record);
  pair.client = std::move(fds[0]);
  if (fds.size() > 1) pair.backend = std::move(fds[1]);
  watch.adopted.insert(pair.record.id);
  watch.worker->adopt_pair(std::move(pair));
}

void adopt_batch_from_keeper(ControlWatch& watch, Message& message) {
  size_t first_fd = 0;
  for (size_t i = 0; i < message.records.size(); ++i) {
    const size_t count = message.record_fds[i];
    adopt_from_keeper(watch, message.records[i],
                      std::span<UniqueFd>(message.fds).subspan(first_fd, count));
    first_fd += count;
  }
}

Status open_restore_locks(ControlWatch& watch) {
  repair::FlowLockOptions made_by_the_keeper;
  made_by_the_keeper.ensure_ruleset = false;
  while (watch.restore_locks.size() < 2) {
    Result<repair::FlowLock> lock =
        repair::FlowLock::open(watch.config->handoff.nft_table, made_by_the_keeper);
    if (!lock) return lock.error().context("restore");
    // Each batch's unlock releases that batch's packets; the rest wait for theirs.
    if (watch.hold) lock->release_on_unlock(&*watch.hold, repair::ReleaseOnUnlock::kTheirPackets);
    watch.restore_locks.push_back(std::move(*lock));
  }
  return {};
}

// After the restore every flow it restored is unlocked: what is still held belongs to
// a pair it could not restore (released: still locked, it is only queued again), or
// arrived as the last unlock committed.
void release_leftover_packets(ControlWatch& watch) {
  if (!watch.hold) return;
  if (Result<repair::ReleaseCounts> r = watch.hold->release_all(); !r) {
    watch.log->error("worker: {}", r.error().message);
  }
}

// kAdoptEnd: every live pair is in. Its text names the handoff file to restore after
// an exec (empty otherwise), skipping the pairs adopted live (a restoring worker died
// half way). The loop waits meanwhile: the adopted pairs are served after it.
void finish_start(ControlWatch& watch, const std::string& restore_path) {
  watch.adopting = false;
  std::string summary = "adopted " + std::to_string(watch.adopted.size()) + " pairs";
  if (!restore_path.empty()) {
    const auto restore_started = std::chrono::steady_clock::now();
    const Status opened = open_restore_locks(watch);
    Result<std::string> restored =
        opened
            ? restore_handoff_file(watch.restore_locks, restore_path, watch.adopted, *watch.worker,
                                   *watch.link, *watch.channel, *watch.metrics, watch.log)
            : Result<std::string>(opened.error());
    release_leftover_packets(watch);
    watch.log->info(
        "worker {}: restore took {} ms; held packets: {} released, {} retransmissions dropped",
        ::getpid(),
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                              restore_started)
            .count(),
        watch.hold ? watch.hold->released_total() : 0,
        watch.hold ? watch.hold->dropped_total() : 0);
    if (!restored) {
      watch.log->error("worker: {}", restored.error().message);
      watch.link->send(
          make_message(MessageType::kRestoreFailed, 0, std::nullopt, restored.error().message));
    } else {
      summary += ", " + *restored;
    }
  }
  watch.worker->adoption_done();
  if (watch.start_metrics_server) watch.start_metrics_server();
  announce_ready(watch, summary);
}

void on_control(uv_poll_t* handle, int status, int) {
  auto* watch = static_cast<ControlWatch*>(handle->data);
  for (;;) {
    Result<std::optional<Message>> m = status < 0 ? Result<std::optional<Message>>(
                                                         Error{-status, uv_strerror(status)})
                                                  : watch->channel->receive(/*wait=*/false);
    if (!m && m.error().code == EAGAIN) return;
    if (!m || !*m) {
      watch->log->error(
          "the keeper is gone ({}): closing listeners and draining; connections are no longer "
          "crash-protected",
          m ? "channel closed" : m.error().message);
      watch->poll.close(nullptr);
      watch->worker->request_drain();
      return;
    }
    Message& message = **m;
    switch (message.type) {
      case MessageType::kClientAccepted:
        crash_here_once_for_tests("SEAMLESS_TEST_CRASH_ON_CLIENT");
        if (message.fds.size() == 1 && message.record) {
          watch->worker->accept_from_keeper(message.record->service, message.pair_id,
                                            std::move(message.fds[0]));
        } else {
          watch->log->error("control channel: a client without its fd or record");
        }
        break;
      case MessageType::kAdoptBatch:
        adopt_batch_from_keeper(*watch, message);
        break;
      case MessageType::kAdoptEnd:
        if (watch->adopting) finish_start(*watch, message.text);
        break;
      case MessageType::kQuiesce:
        crash_here_once_for_tests("SEAMLESS_TEST_CRASH_ON_QUIESCE");
        // The keeper sends nothing after it; the poll is closed by now.
        watch->worker->quiesce_now();
        return;
      case MessageType::kDrain: watch->worker->request_drain(); break;
      default: break;
    }
  }
}

std::optional<repair::PacketHold> inherited_packet_hold(const Logger& log) {
  const char* text = std::getenv(repair::kPacketHoldEnvVar);
  if (text == nullptr) return std::nullopt;
  Result<std::pair<int, uint16_t>> parsed = repair::PacketHold::parse_child_description(text);
  if (!parsed) {
    log->error("worker: {}", parsed.error().message);
    return std::nullopt;
  }
  ::fcntl(parsed->first, F_SETFD, FD_CLOEXEC);
  Result<repair::PacketHold> hold =
      repair::PacketHold::adopt(UniqueFd(parsed->first), parsed->second);
  if (hold) return std::move(*hold);
  log->error("worker: {}", hold.error().message);
  return std::nullopt;
}

Result<metrics::MetricsSegment> inherited_segment() {
  const char* text = std::getenv(metrics::kFdEnvVar);
  if (text == nullptr) return Error::logic("no metrics segment from the keeper");
  Result<int> fd = metrics::parse_fd_number(text);
  if (!fd) return fd.error();
  ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
  return metrics::MetricsSegment::adopt(UniqueFd(*fd));
}

int serve(const config::Config& config, ControlChannel& channel,
          const Logger& log) {
  Result<metrics::MetricsSegment> segment = inherited_segment();
  if (!segment) {
    log->error("worker: metrics: {}", segment.error().message);
    return kExitRuntimeError;
  }
  metrics::Metrics metrics(*segment);
  KeeperLink link(channel, log);
  ControlWatch watch;
  WorkerOptions options;
  options.handle_signals = false;  // the keeper owns the signals and tells us
  options.on_stop = [&watch] { watch.poll.close(nullptr); };
  options.ready_when_running = false;  // announce_ready()
  options.leave_after_quiesce = [&link, &log](std::vector<repair::PairRecord> records) {
    // A message per batch: one per pair took ~10 us each on both sides, all of it
    // inside the clients' stall (50 ms at 5,000 pairs).
    for (size_t first = 0; first < records.size(); first += kMaxBatchRecords) {
      Message batch = make_message(MessageType::kPairRecords);
      const size_t end = std::min(records.size(), first + kMaxBatchRecords);
      batch.records.assign(std::make_move_iterator(records.begin() + first),
                           std::make_move_iterator(records.begin() + end));
      link.send(batch);
    }
    link.send(make_message(MessageType::kQuiesced));
    // The keeper acts on our exit, and every client is stalled until it has: leave now.
    // A graceful stop of the /metrics server alone takes 10-200 ms (civetweb polls for
    // its threads); the kernel closes every fd and frees every page the same either way.
    log->flush();
    std::_Exit(link.broken() ? kExitRuntimeError : 0);
  };
  const std::unique_ptr<KillBetweenSendAndDiscard> fault = KillBetweenSendAndDiscard::from_environment();
  options.ops = fault.get();
  Result<std::unique_ptr<Worker>> worker = Worker::create(config, metrics, log, link, options);
  if (!worker) {
    log->error("worker: {}", worker.error().message);
    return kExitRuntimeError;
  }
  std::unique_ptr<metrics::MetricsServer> server;
  watch.start_metrics_server = [&] {
    if (!config.metrics.listen) return;
    auto started = metrics::start_metrics_server(config.metrics.listen->to_string(), *segment);
    if (started) {
      server = std::move(*started);
    } else {
      log->error("worker: {}", started.error().message);  // serve traffic anyway
    }
  };
  watch.worker = worker->get();
  watch.channel = &channel;
  watch.link = &link;
  watch.log = log;
  watch.config = &config;
  watch.metrics = &metrics;
  watch.hold = inherited_packet_hold(log);
  if (watch.poll.init(uv_poll_init((*worker)->loop(), watch.poll.get(), channel.fd())) == 0) {
    watch.poll.get()->data = &watch;
    uv_poll_start(watch.poll.get(), UV_READABLE | UV_DISCONNECT, &on_control);
  }
  if (!workers_silent_for_test()) link.send(make_message(MessageType::kStarted));
  const int rc = (*worker)->run();  // a quiesce does not return (leave_after_quiesce)
  server.reset();
  return rc;
}

}  // namespace

int run_worker_process(const WorkerProcessArgs& args) {
  reset_signals();
  ::fcntl(args.control_fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(args.config_fd, F_SETFD, FD_CLOEXEC);
  ControlChannel channel{UniqueFd(args.control_fd)};
  UniqueFd config_fd(args.config_fd);
  Result<std::string> text = read_all(config_fd.get());
  if (!text) {
    std::fprintf(stderr, "worker: %s\n", text.error().message.c_str());
    return kExitConfigError;
  }
  config::ConfigParse parsed = config::parse_config(*text, args.config_name);
  if (!parsed.config) {
    for (const std::string& e : parsed.errors) std::fprintf(stderr, "worker: %s\n", e.c_str());
    return kExitConfigError;
  }
  const Logger log = make_logger(parsed.config->log);
  return serve(*parsed.config, channel, log);
}

}  // namespace seamless::proxy
