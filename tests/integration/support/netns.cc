#include "tests/integration/support/netns.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace seamless::testing {
namespace {

std::string unique_name(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "sl-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + tag;
}

}  // namespace

int sh(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void must_sh(const std::string& command) {
  const int rc = sh(command);
  ASSERT_EQ(rc, 0) << "command failed: " << command;
}

NetNamespace::NetNamespace(const std::string& tag) : name_(unique_name(tag)) {
  must_sh("ip netns add " + name_);
  must_sh(exec("ip link set lo up"));
  fd_.reset(::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(fd_.valid()) << "open netns " << name_;
}

NetNamespace::~NetNamespace() {
  fd_.reset();
  sh("ip netns del " + name_);
}

std::string NetNamespace::exec(const std::string& command) const {
  return "ip netns exec " + name_ + " " + command;
}

InNetns::InNetns(const NetNamespace& ns)
    : previous_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
  if (::setns(ns.fd(), CLONE_NEWNET) != 0) ADD_FAILURE() << "setns " << ns.name();
}

InNetns::~InNetns() {
  if (::setns(previous_.get(), CLONE_NEWNET) != 0) ADD_FAILURE() << "setns back";
}

TwoHosts::TwoHosts()
    : peer_link("slp" + std::to_string(::getpid() % 100000)),
      host_link("slh" + std::to_string(::getpid() % 100000)) {
  const std::string& veth_peer = peer_link;
  const std::string& veth_host = host_link;
  must_sh("ip link add " + veth_peer + " netns " + peer.name() + " type veth peer name " +
          veth_host + " netns " + host.name());
  for (auto [ns, dev, v4, v6] :
       {std::tuple{&peer, veth_peer, kPeer4, kPeer6}, std::tuple{&host, veth_host, kHost4, kHost6}}) {
    must_sh(ns->exec("ip addr add " + std::string(v4) + "/24 dev " + dev));
    must_sh(ns->exec("ip addr add " + std::string(v6) + "/64 dev " + dev + " nodad"));
    must_sh(ns->exec("ip link set " + dev + " up"));
  }
}

long long snmp_counter(const std::string& group, const std::string& name) {
  for (const char* file : {"/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"}) {
    std::ifstream in(file);
    std::string names, values;
    while (std::getline(in, names) && std::getline(in, values)) {
      std::istringstream n(names), v(values);
      std::string key, value;
      n >> key;
      v >> value;
      if (key != group + ":") continue;
      while (n >> key && v >> value) {
        if (key == name) return std::stoll(value);
      }
    }
  }
  ADD_FAILURE() << "no counter " << group << "." << name;
  return -1;
}

}  // namespace seamless::testing
