// HeldPairs: the keeper's duplicate of every proxied socket and the latest record of
// its pair: the clients the keeper accepted itself, then the worker's messages
// (control_channel.h) in the order they were sent. This is all the keeper holds (DESIGN §2): enough to checkpoint every pair
// when the worker quiesces (upgrade) or dies (crash), or to hand them to a new worker
// (reload).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "proxy/control_channel.h"
#include "repair/checkpoint.h"

namespace seamless::proxy {

struct HeldPair {
  UniqueFd client;
  UniqueFd backend;  // invalid while the backend connect is in flight
  repair::PairRecord record;
  bool restoring = false;  // handed over in repair mode by a restoring worker (kRestored)
  // The record's baselines fit the sockets: false from kRestored (they are the dumped
  // sockets') until the worker's kPairRecord with the restored sockets' baselines.
  bool rebased = true;
};

class HeldPairs {
 public:
  // A client the keeper has just accepted, under a new id (next_id()).
  uint64_t hold_client(UniqueFd client, repair::PairRecord record);
  // The id the next accepted client gets: above every id this table has seen, so that
  // it cannot meet a pair a worker restored or still knows.
  uint64_t next_id() const { return next_id_; }

  // Applies a pair message (kBackendConnected, kPairClosed, kPairRecord(s), kRestored,
  // kAdopt); other types are not the worker's to send about pairs and are ignored.
  // Consumes the message's fds. An error names a message that contradicts the table
  // (its fds are closed; the table is unchanged, but for the known pairs of a
  // kPairRecords).
  Status apply(Message& message);

  // Every pair, ordered by id, as the checkpoint borrows them.
  std::vector<repair::LivePair> live_pairs() const;
  // Lifts every pair out (to hand them to a new worker or to close them).
  std::map<uint64_t, HeldPair> take_all() { return std::exchange(pairs_, {}); }
  std::map<uint64_t, HeldPair>& pairs() { return pairs_; }

  size_t size() const { return pairs_.size(); }
  bool empty() const { return pairs_.empty(); }
  // Open fds held, for the fd-limit admission check and the leak test.
  size_t fd_count() const;

 private:
  void saw_id(uint64_t id) { next_id_ = std::max(next_id_, id + 1); }

  std::map<uint64_t, HeldPair> pairs_;
  uint64_t next_id_ = 1;
};

}  // namespace seamless::proxy
