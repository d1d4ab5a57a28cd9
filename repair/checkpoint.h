// Checkpoint and restore of whole connection pairs through the handoff file: the
// part of a handoff (DESIGN.md §4 steps 3-5 and 7) that needs no process model.
//
// Checkpoint (the keeper, with every pair quiet — no worker touching the sockets):
//   lock every pair's two flows in one batch -> dump each socket and stream its
//   record into the file -> commit, fsync, read back and verify. Success leaves every
//   dumped socket in repair mode: the caller closes them all (or execs, and CLOEXEC
//   does it); their last close is silent. On any failure every socket leaves repair
//   mode again, the flows are unlocked and the file is gone: the connections carry
//   on as if nothing happened.
// Restore (the next worker, before it accepts or connects anything):
//   read and verify the file -> per batch of pairs: restore both legs, finish, unlock
//   the batch's flows, probe each socket -> hand the sockets out -> remove the file.
//   A pair that cannot be restored is counted and left to the lock's timeout, which
//   then resets it: never a silent hang.
// Sockets are borrowed on checkpoint and owned by the result on restore.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "repair/flow_lock.h"
#include "repair/handoff_file.h"
#include "repair/pair_record.h"

namespace seamless::repair {

class Sys;

// Where a leg stands, read once before the lock (survey_leg) so that neither the
// lock nor the dump asks its socket again.
enum class LegState : uint8_t {
  kUnsurveyed,  // not read: the checkpoint asks the socket itself
  kNoSocket,
  kConnected,
  kConnecting,  // SYN_SENT: not carried, the next worker connects afresh
  kClosed,      // CLOSE: see leg_closed
};

struct LegSurvey {
  LegState state = LegState::kUnsurveyed;
  Flow flow;  // kConnected only
};

// A live pair as the keeper holds it.
struct LivePair {
  int client_fd = -1;   // borrowed
  int backend_fd = -1;  // borrowed; -1 while its connect is still in progress
  PairRecord record;    // everything but the images, which the checkpoint fills in
  LegSurvey client_leg;
  LegSurvey backend_leg;
};

struct CheckpointResult {
  std::string path;            // the verified handoff file
  uint64_t pairs = 0;
  uint64_t queued_bytes = 0;   // payload in all dumped queues
  std::vector<Flow> flows;     // what is locked now
  // How long each step took: the lock transaction; dumping every socket and streaming
  // its record out; committing the file and reading it back to verify.
  std::chrono::nanoseconds lock_time{0};
  std::chrono::nanoseconds dump_time{0};
  std::chrono::nanoseconds write_time{0};
};

struct CheckpointOptions {
  std::string dir;
  std::chrono::milliseconds lock_timeout{30000};
  HandoffHeader header;
  // Called with the committed file before it is read back and verified: the
  // integration tests corrupt it here to prove that the verify catches it.
  std::function<void(const std::string& path)> before_verify;
  // Given, a helper thread dumps every other pair through it (from 16 pairs on), in
  // chunks whose records are then written in order: the dump is ~20 us of syscalls a
  // socket, all inside the clients' stall. Must be safe to use beside `sys` (the real
  // Sys is); test doubles that are not leave it out.
  Sys* helper_sys = nullptr;
  // Set when the dumped sockets live on after the checkpoint (an upgrade whose new
  // image takes them through the exec, proxy/kept_sockets.h): each ends its dump with
  // no repair queue selected. With the send queue selected, a pacing or loss-probe
  // timer in repair mode marks the unsent bytes sent without transmitting them, and
  // the live socket would wait for a retransmission timeout to send them. So the
  // peer may get bytes after the dump: should the file be restored after all (the
  // new image died before taking the sockets), the records call every byte the
  // peer's window allowed sent (count_sendable_bytes_as_sent), or its ACK for them
  // would be dropped as one for unsent data and the connection would stall for good.
  bool sockets_live_on = false;
  // Flows the caller locked before the pairs quiesced (an upgrade locks them while the
  // old worker still forwards what reached the sockets before the lock, proxy/keeper.h).
  // Only the pairs' other flows are locked here; these flows that no pair has any
  // more are unlocked; a failure unlocks all of them too. Sorted.
  std::span<const Flow> locked_before;
};

// The step a checkpoint failed at (DESIGN.md §4 steps 3-5), for the operator and the
// metrics: the flow lock, reading the sockets, or writing the file (which includes
// reading it back and verifying it).
enum class CheckpointStep { kLock, kDump, kWrite };

// On failure, `*failed_at` (if given) says which step failed.
Result<CheckpointResult> checkpoint_pairs(Sys& sys, FlowLock& lock,
                                          std::span<const LivePair> pairs,
                                          const CheckpointOptions& options,
                                          CheckpointStep* failed_at = nullptr);

struct RestoredPair {
  PairRecord record;  // images included
  UniqueFd client;
  UniqueFd backend;   // invalid when the record had no backend image
};

struct RestoreReport {
  uint64_t restored = 0;
  uint64_t degraded = 0;  // restored, but a peer's FIN could not be put back
  uint64_t failed = 0;    // left to the lock's timeout
  std::vector<std::string> errors;
  std::chrono::nanoseconds unlock_time{0};  // the unlock transactions, all batches
};

struct RestoreOptions {
  // Bounds how many pairs are held in memory and locked at once.
  size_t batch = 256;
  // Pairs of the file to leave alone: they already live elsewhere (a retry after a
  // worker died half way through a restore).
  std::function<bool(uint64_t id)> skip;
  // This call restores every share_count-th record of the file from the
  // share_index-th on (0-based), so that several threads can restore one file, each
  // with its own Sys and FlowLock.
  size_t share_index = 0;
  size_t share_count = 1;
  // The caller verified the whole file already (verify_handoff_file).
  bool verified = false;
  // Called once per batch with its pairs restored but still in repair mode, before
  // any of them leaves it: a keeper takes its duplicates here (DESIGN §2), so that a
  // restorer dying from here on loses nothing. Should it die before, the sockets close
  // silently (repair mode) and the flows stay locked: the file can be restored again.
  std::function<void(std::span<const RestoredPair>)> hand_over;
};

// Restores every pair of the file; calls `take` with each restored pair after its
// flows were unlocked and probed, its record's baselines rebased onto the restored
// sockets (rebase_restored_pair, while the flows were still locked). The flows of failed pairs stay
// locked until their timeout.
Result<RestoreReport> restore_pairs(Sys& sys, FlowLock& lock, const std::string& path,
                                    const std::function<void(RestoredPair&&)>& take,
                                    const RestoreOptions& options);
inline Result<RestoreReport> restore_pairs(Sys& sys, FlowLock& lock, const std::string& path,
                                           const std::function<void(RestoredPair&&)>& take,
                                           size_t batch = 256) {
  RestoreOptions options;
  options.batch = batch;
  return restore_pairs(sys, lock, path, take, options);
}

// The flow of a connected socket, keyed as its peer's packets carry it.
Result<Flow> flow_of_socket(Sys& sys, int fd);

// A leg in CLOSE: its peer reset it, or both FINs went through. A dump carries what
// it received that was not forwarded yet (DESIGN §4). getpeername fails (ENOTCONN)
// only in CLOSE and SYN_SENT, so the TCP_INFO that tells them apart (~5x its cost) is
// asked only then: this runs for every socket inside the clients' stall.
bool leg_closed(Sys& sys, int fd);

// One getpeername and one getsockname for a connected socket; TCP_INFO only when
// getpeername says ENOTCONN (CLOSE or SYN_SENT). A leg's addresses were read up to
// three times before (closed?, lockable?, dump), all inside the clients' stall.
Result<LegSurvey> survey_leg(Sys& sys, int fd);

// DESIGN §4, a leg that closed in order before the dump: the bytes it still owed its
// partner (*_unread) join the partner's send queue as unsent data, then the partner's
// FIN, so that finishing the restore sends them live (TCP_REPAIR.md restore step 9)
// and the direction is finished. Fails if the partner cannot take them (gone, or its
// FIN already sent).
Status owe_closed_legs_to_partners(PairRecord& record);

// The flows a lock of these live pairs covers: both legs, but not a backend still
// connecting (not carried: the next worker connects afresh) nor a leg already closed.
// A surveyed leg is taken as surveyed.
Result<std::vector<Flow>> lockable_flows(Sys& sys, std::span<const LivePair> pairs);

// The two flows of a pair's sockets (client leg first), by their addresses.
std::vector<Flow> flows_of(const PairRecord& record);

}  // namespace seamless::repair
