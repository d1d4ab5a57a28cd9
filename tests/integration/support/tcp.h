// Small socket helpers for integration tests: listeners, connections and waits,
// each failing the current test with a message rather than throwing.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "base/unique_fd.h"

namespace seamless::testing {

// A listening TCP socket on "addr:port" (port 0 = ephemeral); `v6only` for [::].
UniqueFd listen_on(const std::string& host, uint16_t port, bool v6only = false);
uint16_t local_port(int fd);
// A blocking connect, then O_NONBLOCK.
UniqueFd connect_to(const std::string& host, uint16_t port);
// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC, waiting up to 5 s.
UniqueFd accept_one(int listener);

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

int tcp_state(int fd);
int set_nonblocking(int fd);

}  // namespace seamless::testing
