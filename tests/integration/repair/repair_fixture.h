// Shared pieces of the repair integration tests: a connection between the "peer"
// and the "host" test hosts in one of several address setups, and the
// lock -> dump -> close -> restore -> unlock -> probe cycle on its host side.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "repair/flow_lock.h"
#include "repair/socket_image.h"
#include "repair/sys.h"
#include "tests/integration/support/netns.h"
#include "tests/integration/support/tcp.h"

namespace seamless::testing {

enum class Setup { kIpv4, kIpv6, kMappedIpv4, kLoopback4, kLoopback6 };
const char* to_string(Setup setup);

struct Connection {
  UniqueFd host;  // the side that is migrated
  UniqueFd peer;  // the other end: lives in the peer namespace (or host for loopback)
};

// The two hosts plus a flow lock in the host namespace.
class RepairNet {
 public:
  RepairNet();
  ~RepairNet();

  // Opens `count` connections in the given setup; host sides are non-blocking.
  std::vector<Connection> connect(Setup setup, int count, int peer_rcvbuf = 0,
                                  int host_buffers = 0);

  repair::Flow flow_of(int host_fd) const;
  void lock(const std::vector<repair::Flow>& flows,
            std::chrono::milliseconds timeout = std::chrono::seconds(30));
  void unlock(const std::vector<repair::Flow>& flows);

  TwoHosts hosts;
  repair::Sys sys;
  std::optional<repair::FlowLock> flow_lock;
};

// Dumps a locked host socket and closes it silently. The image is returned.
repair::SocketImage dump_and_close(repair::Sys& sys, UniqueFd& fd);

// Restores into repair mode (no finish yet).
repair::RestoredSocket restore(repair::SocketRestorer& restorer, const repair::SocketImage& image);

// Counts RSTs sent from the namespace the calling thread is in.
long long out_rsts();

}  // namespace seamless::testing
