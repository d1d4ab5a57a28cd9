// PairRecord: one proxied connection pair as the handoff file carries it across an
// exec or a worker crash (DESIGN.md §4, §5): both legs' repair images, where the pair
// stood in forwarding, and its counters. A plain, copyable, comparable value.
//
// Who fills what: the keeper builds a record per pair after dumping its sockets
// (socket_image.h) and appends it to a HandoffWriter; the next worker reads it back
// with a HandoffReader and restores. The record owns its queues (inside the images).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "repair/socket_image.h"

namespace seamless::repair {

// Bits of PairRecord::flags. A file may carry bits this binary does not know (a
// newer minor version); they are kept as they are and should be ignored.
enum PairFlag : uint32_t {
  // The client sent EOF and the worker has already passed it on (shutdown(SHUT_WR)
  // on the backend); nothing more will come from the client.
  kClientFinished = 1u << 0,
  // The backend sent EOF and the worker passed it on to the client.
  kBackendFinished = 1u << 1,
  // The client leg ended with a reset (SO_ERROR ECONNRESET): abort the backend.
  kClientReset = 1u << 2,
  // The backend leg ended with a reset: abort the client.
  kBackendReset = 1u << 3,
  // Migrated with a loss the peers cannot see but that is counted, e.g. a peer's
  // FIN that could not be put back (RestoredSocket::peer_fin_missing).
  kDegraded = 1u << 4,
  // Restore the legs only to abort them (restore failed elsewhere or the lock is
  // about to expire), so both peers get a valid RST at once instead of hanging.
  kAbort = 1u << 5,
};

struct PairRecord {
  uint64_t id = 0;
  std::string service;  // the config's service name
  std::string backend;  // backend address as configured, "198.18.1.2:7001" (by address,
                        // not index: a reload may reorder or drop backends)

  // A leg is absent when it has no socket to restore: the backend connect was still
  // in progress (SYN_SENT: the next worker connects a fresh backend), or the leg
  // already reached CLOSE (its leftover bytes travel in *_unread below).
  std::optional<SocketImage> client;
  std::optional<SocketImage> backend_socket;

  // For a leg that is absent because it closed in order (DESIGN §4): the bytes it
  // had received and the worker had not yet forwarded. The next worker writes them
  // to the partner, then passes the EOF on.
  std::string client_unread;
  std::string backend_unread;

  uint32_t flags = 0;  // PairFlag bits

  // PROXY protocol header towards the backend (0/0/empty when the service sends none).
  uint32_t header_len = 0;      // its total length
  uint32_t header_pending = 0;  // bytes of it not yet written (<= header_len)
  // The header itself, so that the next worker sends exactly the missing tail even
  // if its config would now build a different one. Empty or header_len bytes.
  std::string proxy_header;

  // Counter baselines per leg (signed 64-bit, DESIGN §3), as of the dump.
  int64_t client_off_w = 0;
  int64_t client_off_r = 0;
  int64_t backend_off_w = 0;
  int64_t backend_off_r = 0;

  // Logical byte totals so far, carried across so the next worker continues them.
  uint64_t bytes_client_to_backend = 0;
  uint64_t bytes_backend_to_client = 0;

  int64_t created_at_unix_ms = 0;

  bool has(PairFlag flag) const { return (flags & flag) != 0; }
  bool operator==(const PairRecord&) const = default;
};

}  // namespace seamless::repair
