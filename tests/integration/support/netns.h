// Test hosts for integration tests: network namespaces joined by veth pairs, using
// only 198.18.0.0/15 and 2001:db8::/32. Everything created is removed in destructors,
// so a failing test leaves nothing behind (scripts/test.sh also sweeps leftovers of
// test processes that crashed).
#pragma once

#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace seamless::testing {

// Runs a command through /bin/sh; returns its exit status. Output goes to stderr.
int sh(const std::string& command);
// Like sh() but fails the current test when the command fails.
void must_sh(const std::string& command);

// One network namespace, named "sl-<pid>-<tag>", with loopback up.
class NetNamespace {
 public:
  explicit NetNamespace(const std::string& tag);
  ~NetNamespace();
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }
  // "ip netns exec <name> <command>"
  std::string exec(const std::string& command) const;

 private:
  std::string name_;
  UniqueFd fd_;
};

// Moves the calling thread into a namespace for the guard's lifetime. Sockets
// created meanwhile stay in that namespace after the thread moves back.
class InNetns {
 public:
  explicit InNetns(const NetNamespace& ns);
  ~InNetns();
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  UniqueFd previous_;
};

// Two hosts on one link:
//   peer: 198.18.0.1/24, 2001:db8::1/64      host: 198.18.0.2/24, 2001:db8::2/64
// The "host" side is where seamless (or the repair code under test) runs.
class TwoHosts {
 public:
  TwoHosts();
  NetNamespace peer{"peer"};
  NetNamespace host{"host"};
  const std::string peer_link;  // the veth end in `peer`
  const std::string host_link;  // the veth end in `host`
  static constexpr const char* kPeer4 = "198.18.0.1";
  static constexpr const char* kHost4 = "198.18.0.2";
  static constexpr const char* kPeer6 = "2001:db8::1";
  static constexpr const char* kHost6 = "2001:db8::2";
};

// A counter from /proc/net/snmp or /proc/net/netstat of the calling thread's
// namespace, e.g. snmp_counter("Tcp", "OutRsts").
long long snmp_counter(const std::string& group, const std::string& name);

}  // namespace seamless::testing
