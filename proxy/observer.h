// PairObserver: the points in a pair's life where the keeper must hear about it
// (DESIGN §2, control channel). The worker calls these synchronously on its loop
// thread; an implementation must not block and must not close the fds.
//
//   on_client_accepted    a new pair, before any peek, connect or header. Under a keeper
//                         the keeper accepted the client itself and already holds it.
//   on_client_refused     a client the keeper accepted was turned away before it became
//                         a pair (max_connections): the keeper closes its duplicate.
//   on_backend_connected  the backend connect completed: the backend fd and the pair
//                         record (to_record(pair)) follow.
//   on_pair_closed        the pair ended ("finished" or "aborted"): the keeper drops its
//                         duplicates. The fds close after this returns.
#pragma once

#include <cstdint>
#include <string_view>

namespace seamless::proxy {

struct Pair;

enum class CloseReason : uint8_t {
  kFinished,       // both directions ended with FIN and were passed on
  kClientReset,    // the client leg failed (reset); the backend was aborted
  kBackendReset,   // the backend leg failed (reset); the client was aborted
  kConnectFailed,  // no backend could be reached; the client was aborted
  kIdle,           // idle_timeout: FIN both ways
  kDrain,          // drain_timeout at shutdown: FIN both ways
  kError,          // a local error (e.g. out of memory for a handle); both aborted
};

std::string_view to_string(CloseReason reason);

// Whether the pair ended in an abort (RST) rather than in order.
inline bool is_abort(CloseReason reason) {
  return reason == CloseReason::kClientReset || reason == CloseReason::kBackendReset ||
         reason == CloseReason::kConnectFailed || reason == CloseReason::kError;
}

class PairObserver {
 public:
  virtual ~PairObserver() = default;
  virtual void on_client_accepted(const Pair& pair) = 0;
  virtual void on_client_refused(uint64_t pair_id) = 0;
  virtual void on_backend_connected(const Pair& pair) = 0;
  virtual void on_pair_closed(const Pair& pair, CloseReason reason) = 0;
};

// No keeper (in-process tests): nobody is listening.
class NullPairObserver final : public PairObserver {
 public:
  void on_client_accepted(const Pair&) override {}
  void on_client_refused(uint64_t) override {}
  void on_backend_connected(const Pair&) override {}
  void on_pair_closed(const Pair&, CloseReason) override {}
};

}  // namespace seamless::proxy
