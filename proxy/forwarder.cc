#include "proxy/forwarder.h"

#include <sys/socket.h>

#include <cerrno>

namespace seamless::proxy {
namespace {

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

// Step 3: discards exactly the `k` bytes dst accepted. The bytes were queued at src a
// moment ago, so anything but `k` means src died in between.
Step discard(SocketOps& ops, int src, size_t peeked, size_t k) {
  const ssize_t dropped = ops.recv(src, nullptr, k, MSG_TRUNC | MSG_DONTWAIT);
  if (dropped < 0) return Step{StepResult::kSourceFailed, peeked, k, errno};
  if (static_cast<size_t>(dropped) != k) return Step{StepResult::kSourceFailed, peeked, k, EIO};
  return Step{StepResult::kMoved, peeked, k, 0};
}

// What a step that did not simply move bytes means for the flow; aborts the partner of
// a failed socket so the reset reaches the other peer as a reset.
PumpOutcome conclude(SocketOps& ops, int src, int dst, Flow& flow, const Step& step,
                     PumpOutcome out) {
  switch (step.result) {
    case StepResult::kMoved:
    case StepResult::kDestinationFull:
      flow.blocked = true;
      out.result = PumpResult::kBlocked;
      return out;
    case StepResult::kSourceEmpty:
      out.result = PumpResult::kIdle;
      return out;
    case StepResult::kSourceEof:
      // Everything before the FIN is already in dst's send queue; the FIN follows it.
      if (ops.shutdown(dst, SHUT_WR) == 0) {
        flow.finished = true;
        out.result = PumpResult::kFinished;
        return out;
      }
      out.error = errno;
      ops.abort(src);
      out.result = PumpResult::kDestinationFailed;
      return out;
    case StepResult::kSourceFailed:
      ops.abort(dst);
      out.error = step.error;
      out.result = PumpResult::kSourceFailed;
      return out;
    case StepResult::kDestinationFailed:
      ops.abort(src);
      out.error = step.error;
      out.result = PumpResult::kDestinationFailed;
      return out;
  }
  return out;
}

}  // namespace

Step forward_step(SocketOps& ops, int src, int dst, std::span<std::byte> scratch) {
  const ssize_t n = ops.recv(src, scratch.data(), scratch.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) {
    const int err = errno;
    if (would_block(err)) return Step{StepResult::kSourceEmpty, 0, 0, 0};
    return Step{StepResult::kSourceFailed, 0, 0, err};
  }
  if (n == 0) return Step{StepResult::kSourceEof, 0, 0, 0};
  const size_t peeked = static_cast<size_t>(n);
  const ssize_t k = ops.send(dst, scratch.data(), peeked, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (k < 0) {
    const int err = errno;
    if (would_block(err)) return Step{StepResult::kDestinationFull, peeked, 0, 0};
    return Step{StepResult::kDestinationFailed, peeked, 0, err};
  }
  if (k == 0) return Step{StepResult::kDestinationFull, peeked, 0, 0};
  return discard(ops, src, peeked, static_cast<size_t>(k));
}

PumpOutcome pump(SocketOps& ops, int src, int dst, Flow& flow, std::span<std::byte> scratch,
                 size_t budget) {
  PumpOutcome out;
  flow.blocked = false;
  if (flow.finished) {
    out.result = PumpResult::kFinished;
    return out;
  }
  for (;;) {
    const Step step = forward_step(ops, src, dst, scratch);
    if (step.result != StepResult::kMoved) return conclude(ops, src, dst, flow, step, out);
    out.moved += step.sent;
    flow.bytes += step.sent;
    // A short send: dst is full (conclude() marks the flow blocked).
    if (step.sent < step.peeked) return conclude(ops, src, dst, flow, step, out);
    // A peek that did not fill the buffer emptied the queue: skip the EAGAIN peek.
    if (step.peeked < scratch.size()) {
      out.result = PumpResult::kIdle;
      return out;
    }
    if (out.moved >= budget) {
      out.result = PumpResult::kYield;
      return out;
    }
  }
}

HeaderResult write_header(SocketOps& ops, int dst, std::string_view header, uint32_t* pending,
                          int* error) {
  while (*pending > 0) {
    const std::string_view tail = header.substr(header.size() - *pending);
    const ssize_t k = ops.send(dst, tail.data(), tail.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (would_block(errno)) return HeaderResult::kBlocked;
      *error = errno;
      return HeaderResult::kFailed;
    }
    if (k == 0) return HeaderResult::kBlocked;
    *pending -= static_cast<uint32_t>(k);
  }
  return HeaderResult::kDone;
}

int leg_events(const Flow& outgoing, bool can_send, const Flow& incoming, bool must_write) {
  int events = 0;
  if (can_send && !outgoing.finished && !outgoing.blocked) events |= kWantRead;
  if (must_write || (incoming.blocked && !incoming.finished)) events |= kWantWrite;
  return events;
}

}  // namespace seamless::proxy
