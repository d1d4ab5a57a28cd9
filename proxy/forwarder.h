// The forwarding step of DESIGN §3, on borrowed fds, through the SocketOps seam:
//
//   1. n = recv(src, buf, cap, MSG_PEEK | MSG_DONTWAIT)
//   2. k = send(dst, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL)      (k may be short, or EAGAIN)
//   3. recv(src, NULL, k, MSG_TRUNC | MSG_DONTWAIT)             discard exactly what dst took
//
// so every in-flight byte is always in a kernel queue (src's receive queue or dst's send
// queue) and a crash loses nothing. Each step runs to its end within one call: a worker
// that stops between loop callbacks never leaves a step half done (quiesce relies on it).
//
// A Flow is one direction of a pair. pump() runs steps until the source is empty, the
// destination is full (Flow::blocked: stop reading src, wait for dst writable), the
// budget is used, EOF (passed on as shutdown(dst, SHUT_WR)) or an error. On an error it
// aborts the partner of the failed socket, so a reset propagates as a reset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "proxy/socket_ops.h"

namespace seamless::proxy {

struct Flow {
  bool blocked = false;   // dst's send queue was full: wait for dst writable, not src readable
  bool finished = false;  // src sent EOF and it was passed on with shutdown(dst, SHUT_WR)
  uint64_t bytes = 0;     // payload bytes moved so far (the logical total)
};

enum class StepResult {
  kMoved,              // `sent` bytes went from src to dst (sent < peeked: dst is now full)
  kSourceEmpty,        // nothing to read (EAGAIN)
  kDestinationFull,    // dst took nothing (EAGAIN); nothing was discarded from src
  kSourceEof,          // src sent FIN and its queue is empty
  kSourceFailed,       // src is dead: reset or another error (see `error`)
  kDestinationFailed,  // dst is dead
};

struct Step {
  StepResult result = StepResult::kSourceEmpty;
  size_t peeked = 0;
  size_t sent = 0;
  int error = 0;  // errno for the failed results
};

// One peek/send/trunc.
Step forward_step(SocketOps& ops, int src, int dst, std::span<std::byte> scratch);

enum class PumpResult {
  kIdle,               // src is empty; keep watching it
  kBlocked,            // dst is full (flow.blocked set); watch dst writable instead
  kYield,              // the budget is used; more may be queued (level-triggered: it fires again)
  kFinished,           // EOF reached and passed on (flow.finished set)
  kSourceFailed,       // src died; dst was aborted
  kDestinationFailed,  // dst died; src was aborted
};

struct PumpOutcome {
  PumpResult result = PumpResult::kIdle;
  uint64_t moved = 0;  // bytes moved by this call (also added to flow.bytes)
  int error = 0;       // errno for the failed results
};

PumpOutcome pump(SocketOps& ops, int src, int dst, Flow& flow, std::span<std::byte> scratch,
                 size_t budget);

enum class HeaderResult { kDone, kBlocked, kFailed };

// Writes the unsent tail of `header` (its last `*pending` bytes) to dst. On kFailed
// `*error` holds the errno.
HeaderResult write_header(SocketOps& ops, int dst, std::string_view header, uint32_t* pending,
                          int* error);

// Event bits, equal to libuv's UV_READABLE and UV_WRITABLE.
inline constexpr int kWantRead = 1;
inline constexpr int kWantWrite = 2;

// What a leg must be watched for, given the flow that leaves it (it is that flow's
// src) and the flow that enters it (its dst). `can_send` is false while the outgoing
// flow may not move yet (backend still connecting, PROXY header not yet written);
// `must_write` asks for writable regardless (connect in progress, header pending).
int leg_events(const Flow& outgoing, bool can_send, const Flow& incoming, bool must_write);

}  // namespace seamless::proxy
