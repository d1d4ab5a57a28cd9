#include "proxy/worker_restore.h"

#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "proxy/test_hooks.h"
#include "repair/checkpoint.h"
#include "repair/handoff_file.h"
#include "repair/sys.h"

namespace seamless::proxy {
namespace {

// Below this many records one thread restores the file: a second one would cost more
// to start (~50 µs) and coordinate than its share takes.
constexpr uint64_t kRecordsForTwoThreads = 16;

// What the restore's threads share. The channel is used under `mu` only: a batch's
// kRestored messages and its kSync must reach the keeper, and the kAck come back, with
// nothing of the other thread's in between that the kAck would not cover.
struct RestoreShared {
  KeeperLink& link;
  ControlChannel& channel;
  metrics::Metrics& metrics;
  const Logger& log;
  const std::unordered_set<uint64_t>& adopted;
  std::mutex mu;
  std::unordered_set<uint64_t> handed;  // with the keeper, not yet out of repair mode
  std::vector<DetachedPair> to_adopt;   // restored by the helper, for the loop thread
};

// Hands a batch of restored sockets (still in repair mode) to the keeper and waits
// until it holds them all. Called under RestoreShared::mu.
void hand_over(KeeperLink& link, ControlChannel& channel, const Logger& log,
               std::span<const repair::RestoredPair> batch) {
  for (const repair::RestoredPair& p : batch) {
    if (!p.client) continue;  // finished: see restore_share
    int fds[2] = {p.client.get(), p.backend.get()};
    link.send(make_message(MessageType::kRestored, p.record.id, p.record),
              std::span<const int>(fds, p.backend ? 2 : 1));
  }
  if (!link.send(make_message(MessageType::kSync))) return;
  Result<std::optional<Message>> ack = channel.receive();
  if (!ack || !*ack || (*ack)->type != MessageType::kAck) {
    log->error("restore: the keeper did not acknowledge a batch; carrying on without it");
  }
  crash_here_once_for_tests("SEAMLESS_TEST_CRASH_ONCE");
}

// seamless_handoff_connections_total: what a restored pair is about to become.
metrics::HandoffConnectionResult outcome_of(const repair::RestoredPair& p) {
  const bool finished =
      p.record.has(repair::kClientFinished) && p.record.has(repair::kBackendFinished);
  if (p.client && p.backend) return metrics::HandoffConnectionResult::kRestored;
  if (finished) return metrics::HandoffConnectionResult::kClosed;  // a leg closed in order
  return metrics::HandoffConnectionResult::kBackendReconnected;
}

// Share `index` of `count` of the file (every count-th record), with its own Sys and
// flow-lock socket; `adopt` gets each pair once its batch is unlocked.
Result<repair::RestoreReport> restore_share(RestoreShared& shared, repair::FlowLock& lock,
                                            const std::string& path, size_t index, size_t count,
                                            const std::function<void(DetachedPair&&)>& adopt) {
  repair::Sys sys;
  repair::RestoreOptions options;
  options.verified = true;
  options.share_index = index;
  options.share_count = count;
  options.skip = [&](uint64_t id) { return shared.adopted.count(id) != 0; };
  options.hand_over = [&](std::span<const repair::RestoredPair> batch) {
    std::lock_guard hold(shared.mu);
    for (const auto& p : batch) {
      if (p.client) shared.handed.insert(p.record.id);
    }
    hand_over(shared.link, shared.channel, shared.log, batch);
  };
  auto take = [&](repair::RestoredPair&& p) {
    shared.metrics.record_handoff_connections(outcome_of(p));
    if (!p.client) {
      // The client leg had closed in order: the restore queued what it still owed the
      // backend, then the FIN, on the backend socket. Closing it leaves the kernel to
      // deliver them; should this worker die first, the file is restored again.
      return;
    }
    {
      std::lock_guard hold(shared.mu);
      shared.handed.erase(p.record.id);
      // The keeper's copy must carry the new baselines: its crash arithmetic needs them.
      shared.link.send(make_message(MessageType::kPairRecord, p.record.id, p.record));
    }
    adopt(DetachedPair{std::move(p.client), std::move(p.backend),
                       repair::PairRecord(metadata_only(std::move(p.record)))});
  };
  return repair::restore_pairs(sys, lock, path, take, options);
}

}  // namespace

Result<std::string> restore_handoff_file(std::vector<repair::FlowLock>& locks,
                                         const std::string& path,
                                         const std::unordered_set<uint64_t>& adopted,
                                         Worker& worker, KeeperLink& link, ControlChannel& channel,
                                         metrics::Metrics& metrics, const Logger& log) {
  // Act on no record before the whole file has proved intact.
  Result<repair::HandoffSummary> summary = repair::verify_handoff_file(path);
  if (!summary) return summary.error().context("restore");
  if (locks.empty()) return Error::logic("restore: no flow-lock socket");
  RestoreShared shared{link, channel, metrics, log, adopted, {}, {}, {}};
  const size_t threads = locks.size() > 1 && summary->records >= kRecordsForTwoThreads ? 2 : 1;
  auto adopt_waiting = [&] {
    std::vector<DetachedPair> waiting;
    {
      std::lock_guard hold(shared.mu);
      waiting.swap(shared.to_adopt);
    }
    for (DetachedPair& p : waiting) worker.adopt_pair(std::move(p));
  };
  std::optional<Result<repair::RestoreReport>> helper_report;
  std::thread helper;
  if (threads == 2) {
    helper = std::thread([&] {
      helper_report = restore_share(shared, locks[1], path, 1, 2, [&](DetachedPair&& p) {
        std::lock_guard hold(shared.mu);
        shared.to_adopt.push_back(std::move(p));
      });
    });
  }
  Result<repair::RestoreReport> report =
      restore_share(shared, locks[0], path, 0, threads, [&](DetachedPair&& p) {
        worker.adopt_pair(std::move(p));
        adopt_waiting();
      });
  if (helper.joinable()) helper.join();
  adopt_waiting();
  std::vector<Result<repair::RestoreReport>*> reports = {&report};
  if (helper_report) reports.push_back(&*helper_report);
  repair::RestoreReport total;
  std::optional<Error> failed;
  for (Result<repair::RestoreReport>* r : reports) {
    if (!*r) {
      failed = r->error();
      continue;
    }
    total.restored += (*r)->restored;
    total.degraded += (*r)->degraded;
    total.failed += (*r)->failed;
    total.unlock_time += (*r)->unlock_time;
    for (std::string& e : (*r)->errors) total.errors.push_back(std::move(e));
  }
  if (failed) return *failed;  // kRestoreFailed: the keeper keeps what it holds
  // Handed over but then failed to leave repair mode: the keeper drops its copies.
  for (uint64_t id : shared.handed) link.send(make_message(MessageType::kPairClosed, id));
  for (const std::string& e : total.errors) log->error("restore: {}", e);
  metrics.record_handoff_connections(metrics::HandoffConnectionResult::kAborted, total.failed);
  metrics.observe_phase(metrics::HandoffPhase::kUnlock, total.unlock_time);
  return "restored " + std::to_string(total.restored) + " pairs (" +
         std::to_string(total.degraded) + " degraded, " + std::to_string(total.failed) + " failed)";
}

}  // namespace seamless::proxy
