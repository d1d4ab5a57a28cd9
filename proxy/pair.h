// Pair: everything the worker knows about one proxied connection, in one place, owned
// by one PairTable (CONVENTIONS "one place for each fact"). The handoff (a later keeper)
// reads a pair through to_record() and a new worker rebuilds one from a record and the
// two fds (DetachedPair), so nothing about a pair may live outside this struct.
//
// Lifetime: a Pair is destroyed by PairTable::erase(). Its poll handles and timer are
// closed then, and each fd is closed only after its poll handle's close callback
// (PolledSocket). Callers must not touch a pair after erasing it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/unique_fd.h"
#include "proxy/forwarder.h"
#include "proxy/polled_socket.h"
#include "proxy/uv_handle.h"
#include "repair/endpoint.h"
#include "repair/pair_record.h"

namespace seamless::proxy {

struct ServiceRuntime;
struct BackendRuntime;
class PairEngine;

enum class PairStage : uint8_t {
  kConnecting,  // client accepted, backend connect in progress (or about to be retried)
  kOpen,        // both legs connected: forwarding
};

// DESIGN §3 counter baselines per leg, carried in the record for the keeper's overhang
// arithmetic: off_w = 1 for a connect()ed socket (its SYN counts as acked), 0 for an
// accepted one; off_r = 0. A restored pair brings its own.
struct Baselines {
  int64_t client_off_w = 0;
  int64_t client_off_r = 0;
  int64_t backend_off_w = 1;
  int64_t backend_off_r = 0;
};

struct Pair {
  uint64_t id = 0;
  PairEngine* engine = nullptr;       // drives the pair's callbacks
  ServiceRuntime* service = nullptr;  // borrowed from the worker
  BackendRuntime* backend = nullptr;  // chosen or connected backend; null if none/unknown
  std::string backend_address;        // as configured; kept by address across reloads
  PairStage stage = PairStage::kConnecting;

  PolledSocket client;         // the accepted leg
  PolledSocket server;         // the backend leg (invalid while no connect is in progress)
  UvHandle<uv_timer_t> timer;  // connect timeout while connecting, then idle timeout

  // The legs' addresses: log lines, and for a client still to be connected the source
  // hash and the PROXY header. A pair adopted with its backend reads them after the
  // adoption (PairEngine::read_addresses_later), or when a log line needs them first:
  // four syscalls a pair were ~10 ms of handing 5,000 pairs to a new worker, while
  // their peers waited.
  mutable repair::Endpoint client_peer;   // the client
  mutable repair::Endpoint client_local;  // the address it connected to
  mutable repair::Endpoint backend_local;
  mutable repair::Endpoint backend_peer;
  mutable bool addresses_unread = false;

  Flow upstream;    // client -> backend ("in")
  Flow downstream;  // backend -> client ("out")

  // PROXY protocol header for the backend; its last `header_pending` bytes are unsent.
  // No payload goes to the backend before it is complete.
  std::string proxy_header;
  uint32_t header_pending = 0;

  uint32_t reset_flags = 0;  // repair::kClientReset / kBackendReset once a leg was reset
  Baselines baselines;
  int64_t created_at_unix_ms = 0;
  uint64_t last_activity_ms = 0;  // loop time of the last byte moved (idle timeout)
  std::vector<bool> tried;        // backends whose connect failed for this pair

  // repair::PairFlag bits: finished directions and resets.
  uint32_t flags() const;
  // "pair 7 pg 198.18.0.1:40000->198.18.0.2:7000" for log lines.
  std::string describe() const;
  // "... backend 198.18.0.2:51000->198.18.0.1:7001" once a backend is known.
  std::string describe_full() const;
  // Reads the addresses if addresses_unread (an adopted pair's, see above).
  void read_addresses() const;
};

// The pair's metadata as the handoff carries it. No socket images: whoever dumps the
// sockets (the keeper) adds those.
repair::PairRecord to_record(const Pair& pair);
// The record of a client just accepted (by the keeper), as to_record() would give it for
// a new pair: nothing forwarded, the baselines of a fresh accept and connect.
repair::PairRecord accepted_client_record(std::string service, int64_t created_at_unix_ms);
// Fills a pair's metadata from a record (flows, header, counters, baselines, id).
void apply_record(const repair::PairRecord& record, Pair& pair);

// A pair lifted out of a worker (quiesce) or handed to one (adoption): both fds, open,
// no longer watched by any loop, and the record. `backend` is invalid when the backend
// connect had not completed: the next worker connects afresh (DESIGN §4).
struct DetachedPair {
  UniqueFd client;
  UniqueFd backend;
  repair::PairRecord record;
};

class PairTable {
 public:
  // A new, empty pair with the next id.
  Pair& create();
  // A pair with the given id (adoption); later ids stay above it.
  Pair& create_with_id(uint64_t id);
  Pair* find(uint64_t id);
  void erase(uint64_t id);
  size_t size() const { return pairs_.size(); }
  bool empty() const { return pairs_.empty(); }
  std::vector<uint64_t> ids() const;

 private:
  std::unordered_map<uint64_t, std::unique_ptr<Pair>> pairs_;
  uint64_t next_id_ = 1;
};

}  // namespace seamless::proxy
