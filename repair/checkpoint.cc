#include "repair/checkpoint.h"

#include <netinet/tcp.h>

#include <optional>

#include "repair/socket_image.h"
#include "repair/sys.h"

namespace seamless::repair {
namespace {

constexpr uint8_t kSynSent = 2;

}  // namespace

Result<Flow> flow_of_socket(Sys& sys, int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (sys.getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Error::from_errno("getsockname fd " + std::to_string(fd));
  }
  auto local = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  len = sizeof(ss);
  if (sys.getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Error::from_errno("getpeername fd " + std::to_string(fd));
  }
  auto peer = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  if (!local) return local.error();
  if (!peer) return peer.error();
  return Flow{*peer, *local};
}

namespace {

// A backend leg still connecting has no connection to migrate: the next worker
// connects a fresh one.
bool still_connecting(Sys& sys, int fd) {
  TcpInfo info;
  return fd < 0 || (sys.tcp_info(fd, &info) == 0 && info.state == kSynSent);
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

Result<std::vector<Flow>> lockable_flows(Sys& sys, std::span<const LivePair> pairs) {
  std::vector<Flow> flows;
  flows.reserve(pairs.size() * 2);
  for (const LivePair& p : pairs) {
    for (int fd : {p.client_fd, p.backend_fd}) {
      if (fd < 0 || (fd == p.backend_fd && still_connecting(sys, fd))) continue;
      auto flow = flow_of_socket(sys, fd);
      if (!flow) return flow.error().context("pair " + std::to_string(p.record.id));
      flows.push_back(*flow);
    }
  }
  return flows;
}

// Dumps every pair and streams its record into `writer`; on failure `*step` says
// whether reading a socket or writing the file failed.
Status dump_pairs(Sys& sys, std::span<const LivePair> pairs, const CheckpointOptions& options,
                  HandoffWriter& writer, RepairUndo& undo, uint64_t* queued, CheckpointStep* step) {
  *step = CheckpointStep::kDump;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const LivePair& p = pairs[i];
    PairRecord record = p.record;
    if (options.before_dump) {
      if (auto st = options.before_dump(i, record); !st) return st;
    }
    auto client = dump_socket(sys, p.client_fd);
    if (!client) return client.error().context("pair " + std::to_string(record.id));
    undo.add(p.client_fd);
    *queued += client->send_queue.size() + client->recv_queue.size();
    record.client = std::move(client).value();
    if (!still_connecting(sys, p.backend_fd)) {
      auto backend = dump_socket(sys, p.backend_fd);
      if (!backend) return backend.error().context("pair " + std::to_string(record.id));
      undo.add(p.backend_fd);
      *queued += backend->send_queue.size() + backend->recv_queue.size();
      record.backend_socket = std::move(backend).value();
    }
    if (auto st = writer.append(record); !st) {
      *step = CheckpointStep::kWrite;
      return st;
    }
  }
  return {};
}

}  // namespace

std::vector<Flow> flows_of(const PairRecord& record) {
  std::vector<Flow> flows;
  for (const auto* image : {&record.client, &record.backend_socket}) {
    if (*image) flows.push_back(Flow{(*image)->peer, (*image)->local});
  }
  return flows;
}

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
  if (auto st = lock.lock(*flows, options.lock_timeout); !st) {
    fail_at(CheckpointStep::kLock);
    return st.error().context("checkpoint");
  }
  RepairUndo undo(sys);
  auto fail = [&](const Error& e) -> Error {
    fail_at(step);
    undo.undo();  // leave repair before the peers' packets flow again
    Error error = e.context("checkpoint");
    if (auto st = lock.unlock(*flows); !st) error.message += "; then " + st.error().message;
    return error;
  };
  step = CheckpointStep::kWrite;
  auto writer = HandoffWriter::create(options.dir, options.header);
  if (!writer) return fail(writer.error());
  if (auto st = dump_pairs(sys, pairs, options, *writer, undo, &result.queued_bytes, &step); !st) {
    return fail(st.error());
  }
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
  undo.keep();
  result.path = *path;
  result.pairs = pairs.size();
  result.flows = std::move(flows).value();
  return result;
}

namespace {

// Both legs of a pair restored, still in repair mode (the flows are locked).
Result<RestoredPair> restore_legs(SocketRestorer& restorer, PairRecord record, bool* degraded) {
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

// Hands a batch over (still in repair mode), takes each pair out of repair mode,
// unlocks the batch's flows in one transaction, draws each peer's ACK, and hands the
// pairs out.
void release(FlowLock& lock, SocketRestorer& restorer, std::vector<RestoredPair>& batch,
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
    ready.push_back(std::move(p));
  }
  batch.clear();
  std::vector<Flow> flows;
  for (const RestoredPair& p : ready) {
    for (const Flow& f : flows_of(p.record)) flows.push_back(f);
  }
  // Should the unlock fail, the elements still expire: a stall, not a loss.
  if (auto st = lock.unlock(flows); !st) report->errors.push_back(st.error().message);
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
  auto summary = verify_handoff_file(path);
  if (!summary) return summary.error().context("restore");
  auto reader = HandoffReader::open(path);
  if (!reader) return reader.error().context("restore");
  SocketRestorer restorer(sys, lock.mark());
  RestoreReport report;
  std::vector<RestoredPair> pending;
  const size_t batch = options.batch == 0 ? 1 : options.batch;
  for (;;) {
    auto record = reader->next();
    if (!record) return record.error().context("restore");
    if (!*record) break;
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
    if (pending.size() >= batch) release(lock, restorer, pending, take, options, &report);
  }
  release(lock, restorer, pending, take, options, &report);
  return report;
}

}  // namespace seamless::repair
