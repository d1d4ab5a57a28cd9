#include "repair/checkpoint.h"

#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "repair/byte_accounting.h"
#include "repair/socket_image.h"
#include "repair/sys.h"

namespace seamless::repair {
namespace {

constexpr uint8_t kSynSent = 2;
constexpr uint8_t kClose = 7;

}  // namespace

Result<Flow> flow_of_socket(Sys& sys, int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (sys.getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Error::from_errno("getpeername fd " + std::to_string(fd));
  }
  auto peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  len = sizeof(ss);
  if (sys.getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Error::from_errno("getsockname fd " + std::to_string(fd));
  }
  auto local = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  if (!local) return local.error();
  if (!peer) return peer.error();
  return Flow{*peer, *local};
}

bool leg_closed(Sys& sys, int fd) {
  if (fd < 0) return false;
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  if (sys.getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) return false;
  TcpInfo info;
  return sys.tcp_info(fd, &info) == 0 && info.state == kClose;
}

Result<LegSurvey> survey_leg(Sys& sys, int fd) {
  if (fd < 0) return LegSurvey{LegState::kNoSocket, {}};
  Result<Flow> flow = flow_of_socket(sys, fd);
  if (flow) return LegSurvey{LegState::kConnected, *flow};
  if (flow.error().code != ENOTCONN) return flow.error();
  TcpInfo info;
  if (sys.tcp_info(fd, &info) != 0) return Error::from_errno("TCP_INFO fd " + std::to_string(fd));
  if (info.state == kClose) return LegSurvey{LegState::kClosed, {}};
  if (info.state == kSynSent) return LegSurvey{LegState::kConnecting, {}};
  return Error::logic("fd " + std::to_string(fd) + " has no peer in TCP state " +
                      std::to_string(info.state));
}

namespace {

// A backend leg still connecting has no connection to migrate: the next worker
// connects a fresh one.
bool still_connecting(Sys& sys, int fd) {
  TcpInfo info;
  return fd < 0 || (sys.tcp_info(fd, &info) == 0 && info.state == kSynSent);
}

// Its receive queue, peeked (left in place, should the checkpoint fail).
Result<std::string> unread_bytes(Sys& sys, int fd) {
  int inq = 0;
  if (sys.ioctl_int(fd, SIOCINQ, &inq) != 0) return Error::from_errno("SIOCINQ");
  std::string bytes(size_t(inq) + 1, '\0');  // one more, to prove there is no more
  const ssize_t n = sys.recv(fd, bytes.data(), bytes.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n != inq) {
    return Error::logic("peeking the " + std::to_string(inq) +
                        " unread bytes of a closed leg: got " + std::to_string(n));
  }
  bytes.resize(size_t(n));
  return bytes;
}

// Sockets put into repair mode so far, taken out again if the checkpoint fails.
class RepairUndo {
 public:
  explicit RepairUndo(Sys& sys) : sys_(sys) {}
  ~RepairUndo() { undo(); }
  void add(int fd) { fds_.push_back(fd); }
  void keep() { fds_.clear(); }
  void undo() {
    for (int fd : fds_) sys_.set_int(fd, IPPROTO_TCP, TCP_REPAIR, 0);
    fds_.clear();
  }

 private:
  Sys& sys_;
  std::vector<int> fds_;
};

// One pair's record with both legs dumped (a closed leg leaves its unread bytes
// instead). The fds it put into repair mode go to `in_repair`, the queued bytes to
// `*queued`.
Status dump_pair(Sys& sys, const LivePair& p, bool sockets_live_on, PairRecord& record,
                 std::vector<int>& in_repair, uint64_t* queued) {
  record = p.record;
  auto dump_leg = [&](int fd, const LegSurvey& leg, std::optional<SocketImage>& image,
                      std::string& unread) -> Status {
    const bool surveyed = leg.state != LegState::kUnsurveyed;
    bool closed = surveyed ? leg.state == LegState::kClosed : leg_closed(sys, fd);
    Result<SocketImage> dumped = Error::logic("not dumped");
    if (!closed) {
      dumped = leg.state == LegState::kConnected
                   ? dump_socket(sys, fd, leg.flow.local, leg.flow.peer)
                   : dump_socket(sys, fd);
      // A reset or the last FIN may have landed between the survey and the lock.
      if (!dumped && surveyed) closed = leg_closed(sys, fd);
      if (!dumped && !closed) return dumped.error();
    }
    if (closed) {
      auto bytes = unread_bytes(sys, fd);
      if (!bytes) return bytes.error();
      *queued += bytes->size();
      unread = std::move(bytes).value();
      return {};
    }
    in_repair.push_back(fd);
    if (sockets_live_on) {
      if (sys.set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE) != 0) {
        return Error::from_errno("dump fd " + std::to_string(fd) + ": select no repair queue");
      }
      count_sendable_bytes_as_sent(*dumped);
    }
    *queued += dumped->send_queue.size() + dumped->recv_queue.size();
    image = std::move(dumped).value();
    return {};
  };
  Status dumped = dump_leg(p.client_fd, p.client_leg, record.client, record.client_unread);
  // A backend the survey found connecting is asked again: one that connected before
  // the lock is dumped, as it was before there was a survey.
  const bool connecting =
      p.backend_leg.state == LegState::kConnected ? false : still_connecting(sys, p.backend_fd);
  if (dumped && !connecting) {
    dumped = dump_leg(p.backend_fd, p.backend_leg, record.backend_socket, record.backend_unread);
  }
  if (!dumped) return dumped.error().context("pair " + std::to_string(record.id));
  return {};
}

// Pairs dumped ahead of writing: memory is bounded by two chunks of records' queues.
constexpr size_t kChunkPairs = 32;
constexpr size_t kParallelFromPairs = 16;

// A run of pairs that both threads dump, each taking the next pair not yet taken, so
// that neither waits while the other has work.
struct DumpChunk {
  size_t start = 0;
  size_t count = 0;
  std::vector<PairRecord> records;
  std::vector<Status> results;
  std::atomic<size_t> next{0};  // the next pair (index in the chunk) to take
  std::atomic<size_t> done{0};  // pairs dumped
};

// Dumps every pair and streams its record into `writer`, in order; on failure `*step`
// says whether reading a socket or writing the file failed. With a helper Sys, a second
// thread dumps alongside for the whole run: while the main thread writes chunk c, it
// dumps chunk c + 1, which the main thread then joins. (A thread per chunk, joined
// before each write, kept the two cores ~1.5 busy at 5,000 pairs.)
Status dump_pairs(Sys& sys, const CheckpointOptions& options, std::span<const LivePair> pairs,
                  HandoffWriter& writer, RepairUndo& undo, uint64_t* queued, CheckpointStep* step) {
  *step = CheckpointStep::kDump;
  const bool live_on = options.sockets_live_on;
  const bool parallel = options.helper_sys != nullptr && pairs.size() >= kParallelFromPairs;
  const size_t chunk_size = parallel ? kChunkPairs : 1;
  // Never reused, so a thread still looking at a finished chunk finds it unchanged.
  std::vector<DumpChunk> chunks((pairs.size() + chunk_size - 1) / chunk_size);
  for (size_t c = 0; c < chunks.size(); ++c) {
    chunks[c].start = c * chunk_size;
    chunks[c].count = std::min(chunk_size, pairs.size() - chunks[c].start);
  }
  std::mutex mutex;
  std::condition_variable changed;
  size_t published = 0;  // chunks the helper may take from (guarded by mutex)
  std::atomic<bool> stop{false};
  auto work = [&](DumpChunk& chunk, Sys& with, std::vector<int>& in_repair, uint64_t* bytes) {
    for (size_t i; !stop && (i = chunk.next.fetch_add(1)) < chunk.count;) {
      chunk.results[i] =
          dump_pair(with, pairs[chunk.start + i], live_on, chunk.records[i], in_repair, bytes);
      if (chunk.done.fetch_add(1) + 1 == chunk.count) {
        const std::lock_guard<std::mutex> lock(mutex);
        changed.notify_all();
      }
    }
  };
  auto publish = [&](DumpChunk& chunk) {
    chunk.records.resize(chunk.count);
    chunk.results.resize(chunk.count);
    {
      const std::lock_guard<std::mutex> lock(mutex);
      ++published;
    }
    changed.notify_all();
  };
  std::vector<int> helper_in_repair;
  uint64_t helper_queued = 0;
  std::thread helper;
  if (parallel) {
    helper = std::thread([&] {
      for (size_t c = 0; c < chunks.size(); ++c) {
        {
          std::unique_lock<std::mutex> lock(mutex);
          changed.wait(lock, [&] { return stop || published > c; });
          if (published <= c) return;
        }
        work(chunks[c], *options.helper_sys, helper_in_repair, &helper_queued);
      }
    });
  }
  // Every fd put into repair mode is undone on failure, whichever thread did it.
  auto finish = [&](Status status) {
    stop = true;
    {
      const std::lock_guard<std::mutex> lock(mutex);
      changed.notify_all();
    }
    if (helper.joinable()) helper.join();
    for (int fd : helper_in_repair) undo.add(fd);
    *queued += helper_queued;
    return status;
  };
  if (!chunks.empty()) publish(chunks[0]);
  for (size_t c = 0; c < chunks.size(); ++c) {
    DumpChunk& chunk = chunks[c];
    std::vector<int> in_repair;
    work(chunk, sys, in_repair, queued);
    for (int fd : in_repair) undo.add(fd);
    {
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] { return chunk.done.load() == chunk.count; });
    }
    if (c + 1 < chunks.size()) publish(chunks[c + 1]);
    for (size_t i = 0; i < chunk.count; ++i) {
      if (!chunk.results[i]) return finish(chunk.results[i]);
      if (auto st = writer.append(chunk.records[i]); !st) {
        *step = CheckpointStep::kWrite;
        return finish(st);
      }
    }
    // Its queues are in the file now. (Every pair of it was taken, so the helper only
    // ever looks at its counters again.)
    std::vector<PairRecord>().swap(chunk.records);
  }
  return finish({});
}

}  // namespace

Status owe_closed_legs_to_partners(PairRecord& record) {
  auto owe = [&](std::optional<SocketImage>& closed_leg, std::string& unread,
                 std::optional<SocketImage>& partner, PairFlag passed_on) -> Status {
    if (closed_leg || unread.empty()) return {};
    if (!partner || fin_sent(partner->state)) {
      return Error::logic("a leg closed with " + std::to_string(unread.size()) +
                          " bytes owed to a partner that " +
                          (partner ? "has already sent its FIN" : "is gone"));
    }
    partner->send_queue += unread;
    partner->send_unsent += uint32_t(unread.size());
    partner->state =
        partner->state == TcpState::kCloseWait ? TcpState::kLastAck : TcpState::kFinWait1;
    partner->fin_unsent = true;
    unread.clear();
    record.flags |= passed_on;
    return {};
  };
  if (auto st = owe(record.backend_socket, record.backend_unread, record.client, kBackendFinished);
      !st) {
    return st.error().context("backend");
  }
  if (auto st = owe(record.client, record.client_unread, record.backend_socket, kClientFinished);
      !st) {
    return st.error().context("client");
  }
  return {};
}

Result<std::vector<Flow>> lockable_flows(Sys& sys, std::span<const LivePair> pairs) {
  std::vector<Flow> flows;
  flows.reserve(pairs.size() * 2);
  for (const LivePair& p : pairs) {
    for (const auto& [fd, leg] :
         {std::pair{p.client_fd, &p.client_leg}, std::pair{p.backend_fd, &p.backend_leg}}) {
      if (fd < 0) continue;
      if (leg->state != LegState::kUnsurveyed) {
        if (leg->state == LegState::kConnected) flows.push_back(leg->flow);
        continue;
      }
      // A closed leg, or a backend still connecting, has no flow to lock: the kernel
      // answers getpeername with ENOTCONN in exactly those two states (CLOSE,
      // SYN_SENT). Asked first, it saves the TCP_INFO per socket that said so before
      // (~1.7 us each, 17 ms at 5,000 pairs, all inside the clients' stall).
      auto flow = flow_of_socket(sys, fd);
      if (!flow && flow.error().code == ENOTCONN) continue;
      if (!flow) return flow.error().context("pair " + std::to_string(p.record.id));
      flows.push_back(*flow);
    }
  }
  return flows;
}

std::vector<Flow> flows_of(const PairRecord& record) {
  std::vector<Flow> flows;
  for (const auto* image : {&record.client, &record.backend_socket}) {
    if (*image) flows.push_back(Flow{(*image)->peer, (*image)->local});
  }
  return flows;
}

namespace {

// Locks the pairs' flows but those locked before, and unlocks those of the flows
// locked before that are no pair's now (the pair ended meanwhile).
Status lock_flows(FlowLock& lock, std::span<const Flow> flows, const CheckpointOptions& options) {
  if (options.locked_before.empty()) return lock.lock(flows, options.lock_timeout);
  std::vector<Flow> sorted(flows.begin(), flows.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Flow> more, gone;
  std::set_difference(sorted.begin(), sorted.end(), options.locked_before.begin(),
                      options.locked_before.end(), std::back_inserter(more));
  std::set_difference(options.locked_before.begin(), options.locked_before.end(), sorted.begin(),
                      sorted.end(), std::back_inserter(gone));
  if (Status s = lock.lock_more(more, options.lock_timeout); !s) {
    (void)lock.unlock(options.locked_before);
    return s;
  }
  // Best effort: such a flow left locked only drops its last packets (a FIN's ACK)
  // until the lock's timeout.
  if (!gone.empty()) (void)lock.unlock(gone);
  return {};
}

}  // namespace

Result<CheckpointResult> checkpoint_pairs(Sys& sys, FlowLock& lock,
                                          std::span<const LivePair> pairs,
                                          const CheckpointOptions& options,
                                          CheckpointStep* failed_at) {
  CheckpointStep step = CheckpointStep::kDump;
  auto fail_at = [&](CheckpointStep s) {
    if (failed_at != nullptr) *failed_at = s;
  };
  CheckpointResult result;
  auto flows = lockable_flows(sys, pairs);
  if (!flows) {
    fail_at(CheckpointStep::kDump);
    return flows.error().context("checkpoint");
  }
  using Clock = std::chrono::steady_clock;
  auto started = Clock::now();
  if (auto st = lock_flows(lock, *flows, options); !st) {
    fail_at(CheckpointStep::kLock);
    return st.error().context("checkpoint");
  }
  result.lock_time = Clock::now() - started;
  started = Clock::now();
  RepairUndo undo(sys);
  auto fail = [&](const Error& e) -> Error {
    fail_at(step);
    undo.undo();  // leave repair before the peers' packets flow again
    Error error = e.context("checkpoint");
    if (auto st = lock.unlock(*flows); !st) error.message += "; then " + st.error().message;
    if (options.locked_before.empty()) return error;
    if (auto st = lock.unlock(options.locked_before); !st) {
      error.message += "; then " + st.error().message;
    }
    return error;
  };
  step = CheckpointStep::kWrite;
  auto writer = HandoffWriter::create(options.dir, options.header);
  if (!writer) return fail(writer.error());
  if (auto st = dump_pairs(sys, options, pairs, *writer, undo, &result.queued_bytes, &step); !st) {
    return fail(st.error());
  }
  result.dump_time = Clock::now() - started;
  started = Clock::now();
  step = CheckpointStep::kWrite;
  auto path = writer->commit();
  if (!path) return fail(path.error());
  if (options.before_verify) options.before_verify(*path);
  auto summary = verify_handoff_file(*path);
  if (!summary || summary->records != pairs.size()) {
    // The file holds user payload and is useless now; a failure to remove it is
    // secondary to the one reported.
    (void)remove_handoff_file(*path);
    return fail(summary ? Error::logic("verify: " + std::to_string(summary->records) +
                                       " records, expected " + std::to_string(pairs.size()))
                        : summary.error());
  }
  result.write_time = Clock::now() - started;
  undo.keep();
  result.path = *path;
  result.pairs = pairs.size();
  result.flows = std::move(flows).value();
  return result;
}

namespace {

// Both legs of a pair restored, still in repair mode (the flows are locked).
Result<RestoredPair> restore_legs(SocketRestorer& restorer, PairRecord record, bool* degraded) {
  if (auto st = owe_closed_legs_to_partners(record); !st) return st.error();
  RestoredPair pair;
  for (auto [image, fd] : {std::pair{&record.client, &pair.client},
                           std::pair{&record.backend_socket, &pair.backend}}) {
    if (!*image) continue;
    auto restored = restorer.restore(**image);
    if (!restored) return restored.error();
    *degraded = *degraded || restored->peer_fin_missing;
    *fd = std::move(restored->fd);
  }
  if (*degraded) record.flags |= kDegraded;
  pair.record = std::move(record);
  return pair;
}

Status finish_legs(SocketRestorer& restorer, const RestoredPair& pair) {
  for (auto [image, fd] : {std::pair{&pair.record.client, pair.client.get()},
                           std::pair{&pair.record.backend_socket, pair.backend.get()}}) {
    if (!*image) continue;
    if (auto st = restorer.finish(fd, **image); !st) return st;
  }
  return {};
}

// Hands a batch over (still in repair mode), takes each pair out of repair mode and
// rebases its record, unlocks the batch's flows in one transaction, draws each peer's
// ACK, and hands the pairs out.
void release(Sys& sys, FlowLock& lock, SocketRestorer& restorer, std::vector<RestoredPair>& batch,
             const std::function<void(RestoredPair&&)>& take, const RestoreOptions& options,
             RestoreReport* report) {
  if (batch.empty()) return;
  if (options.hand_over) options.hand_over(batch);
  std::vector<RestoredPair> ready;
  ready.reserve(batch.size());
  for (RestoredPair& p : batch) {
    if (auto st = finish_legs(restorer, p); !st) {
      // Closed in repair mode: silent; the flows stay locked until their timeout.
      ++report->failed;
      --report->restored;
      report->errors.push_back("pair " + std::to_string(p.record.id) + ": " +
                               st.error().message);
      continue;
    }
    // While the flows are still locked: no packet moves the counters between reads.
    rebase_restored_pair(sys, p.client.get(), p.backend.get(), p.record);
    ready.push_back(std::move(p));
  }
  batch.clear();
  std::vector<Flow> flows;
  for (const RestoredPair& p : ready) {
    for (const Flow& f : flows_of(p.record)) flows.push_back(f);
  }
  // Should the unlock fail, the elements still expire: a stall, not a loss.
  const auto unlock_started = std::chrono::steady_clock::now();
  if (auto st = lock.unlock(flows); !st) report->errors.push_back(st.error().message);
  report->unlock_time += std::chrono::steady_clock::now() - unlock_started;
  for (RestoredPair& p : ready) {
    // A probe that fails only delays the peer's ACK until a timer fires.
    for (auto [image, fd] : {std::pair{&p.record.client, p.client.get()},
                             std::pair{&p.record.backend_socket, p.backend.get()}}) {
      if (!*image) continue;
      if (auto st = restorer.probe(fd, **image); !st) report->errors.push_back(st.error().message);
    }
    take(std::move(p));
  }
}

}  // namespace

Result<RestoreReport> restore_pairs(Sys& sys, FlowLock& lock, const std::string& path,
                                    const std::function<void(RestoredPair&&)>& take,
                                    const RestoreOptions& options) {
  // Act on no record before the whole file has proved intact.
  if (!options.verified) {
    auto summary = verify_handoff_file(path);
    if (!summary) return summary.error().context("restore");
  }
  if (options.share_count == 0 || options.share_index >= options.share_count) {
    return Error::logic("restore: share " + std::to_string(options.share_index) + " of " +
                        std::to_string(options.share_count));
  }
  auto reader = HandoffReader::open(path);
  if (!reader) return reader.error().context("restore");
  SocketRestorer restorer(sys, lock.mark());
  RestoreReport report;
  std::vector<RestoredPair> pending;
  const size_t batch = options.batch == 0 ? 1 : options.batch;
  for (size_t position = 0;; ++position) {
    auto record = reader->next();
    if (!record) return record.error().context("restore");
    if (!*record) break;
    if (position % options.share_count != options.share_index) continue;
    const uint64_t id = (*record)->id;
    if (options.skip && options.skip(id)) continue;
    bool degraded = false;
    auto pair = restore_legs(restorer, std::move(**record), &degraded);
    if (!pair) {
      ++report.failed;
      report.errors.push_back("pair " + std::to_string(id) + ": " + pair.error().message);
      continue;
    }
    ++report.restored;
    report.degraded += degraded ? 1 : 0;
    pending.push_back(std::move(pair).value());
    if (pending.size() >= batch) release(sys, lock, restorer, pending, take, options, &report);
  }
  release(sys, lock, restorer, pending, take, options, &report);
  return report;
}

}  // namespace seamless::repair
