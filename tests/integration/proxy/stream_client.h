// A client connection driven step by step from the test thread, for tests that put
// pairs into particular states (half-closed, zero window) before a handoff: its two
// deterministic streams, sent and verified byte for byte.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "base/unique_fd.h"
#include "tests/integration/support/streams.h"

namespace seamless::proxy::testing {

inline constexpr uint64_t kMiB = 1 << 20;

struct Client {
  UniqueFd fd;
  seamless::testing::StreamState out;  // what it sent
  seamless::testing::StreamState in;   // what it received and checked
};

inline Client make_client(UniqueFd fd, uint32_t out_seed, uint32_t in_seed) {
  return Client{std::move(fd), {out_seed, 0, 0}, {in_seed, 0, 0}};
}

// Sends `bytes` more of the client's stream, waiting for room.
::testing::AssertionResult send_more(Client& c, uint64_t bytes);

// Reads `bytes` more of the stream, each byte checked. With `then_eof`, exactly that
// many and then the EOF; without, an EOF or a reset is a failure.
::testing::AssertionResult receive_more(Client& c, uint64_t bytes, bool then_eof);

// Sends the client's stream (to an echo service) without reading until nothing moves
// for a second: every buffer on the way is full, both ways, and the client's receive
// window is zero.
::testing::AssertionResult stall(Client& c);

// A stalled echo client reads back everything it sent; then 1 MiB more goes both ways.
::testing::AssertionResult resume(Client& c);

}  // namespace seamless::proxy::testing
