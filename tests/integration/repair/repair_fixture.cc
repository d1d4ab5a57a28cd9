#include "tests/integration/repair/repair_fixture.h"

#include "repair/checkpoint.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace seamless::testing {
namespace {

std::string table_name() { return "sltest" + std::to_string(::getpid()); }

struct Addresses {
  std::string listen;
  bool v6only;
  std::string connect;
  bool loopback;
};

Addresses addresses_for(Setup setup) {
  switch (setup) {
    case Setup::kIpv4: return {TwoHosts::kHost4, false, TwoHosts::kHost4, false};
    case Setup::kIpv6: return {TwoHosts::kHost6, true, TwoHosts::kHost6, false};
    case Setup::kMappedIpv4: return {"::", false, TwoHosts::kHost4, false};
    case Setup::kLoopback4: return {"127.0.0.1", false, "127.0.0.1", true};
    case Setup::kLoopback6: return {"::1", true, "::1", true};
  }
  return {};
}

void set_buffer(int fd, int name, int bytes) {
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, name, &bytes, sizeof(bytes)), 0);
}

}  // namespace

const char* to_string(Setup setup) {
  switch (setup) {
    case Setup::kIpv4: return "Ipv4";
    case Setup::kIpv6: return "Ipv6";
    case Setup::kMappedIpv4: return "MappedIpv4";
    case Setup::kLoopback4: return "Loopback4";
    case Setup::kLoopback6: return "Loopback6";
  }
  return "?";
}

RepairNet::RepairNet() {
  InNetns in(hosts.host);
  auto lock = repair::FlowLock::open(table_name());
  EXPECT_TRUE(lock.ok()) << (lock.ok() ? "" : lock.error().message);
  if (lock.ok()) flow_lock.emplace(std::move(lock).value());
}

RepairNet::~RepairNet() {
  if (!flow_lock) return;
  InNetns in(hosts.host);
  auto st = flow_lock->destroy();
  EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
}

std::vector<Connection> RepairNet::connect(Setup setup, int count, int peer_rcvbuf,
                                           int host_buffers) {
  const Addresses a = addresses_for(setup);
  UniqueFd listener;
  {
    InNetns in(hosts.host);
    listener = listen_on(a.listen, 0, a.v6only);
    if (host_buffers) {
      set_buffer(listener.get(), SO_RCVBUFFORCE, host_buffers);
      set_buffer(listener.get(), SO_SNDBUFFORCE, host_buffers);
    }
  }
  const uint16_t port = local_port(listener.get());
  std::vector<Connection> conns;
  for (int i = 0; i < count; ++i) {
    Connection c;
    {
      InNetns in(a.loopback ? hosts.host : hosts.peer);
      c.peer = connect_to(a.connect, port);
      // Shrinking the buffer after the handshake is enough to close the window.
      if (peer_rcvbuf) set_buffer(c.peer.get(), SO_RCVBUF, peer_rcvbuf);
    }
    c.host = accept_one(listener.get());
    conns.push_back(std::move(c));
  }
  return conns;
}

repair::Flow RepairNet::flow_of(int host_fd) const {
  repair::Sys real;
  // A connection already reset (the no-lock test) has no peer: an empty flow, which
  // only that test meets and which locks nothing it needs.
  auto flow = repair::flow_of_socket(real, host_fd);
  return flow.ok() ? *flow : repair::Flow{};
}

void RepairNet::lock(const std::vector<repair::Flow>& flows, std::chrono::milliseconds timeout) {
  ASSERT_TRUE(flow_lock);
  auto st = flow_lock->lock(flows, timeout);
  ASSERT_TRUE(st.ok()) << st.error().message;
}

void RepairNet::unlock(const std::vector<repair::Flow>& flows) {
  ASSERT_TRUE(flow_lock);
  auto st = flow_lock->unlock(flows);
  ASSERT_TRUE(st.ok()) << st.error().message;
}

repair::SocketImage dump_and_close(repair::Sys& sys, UniqueFd& fd) {
  auto image = repair::dump_socket(sys, fd.get());
  EXPECT_TRUE(image.ok()) << image.error().message;
  fd.reset();  // in repair mode: no FIN, no RST
  return image.ok() ? std::move(image).value() : repair::SocketImage{};
}

repair::RestoredSocket restore(repair::SocketRestorer& restorer, const repair::SocketImage& image) {
  auto restored = restorer.restore(image);
  EXPECT_TRUE(restored.ok()) << restored.error().message;
  return restored.ok() ? std::move(restored).value() : repair::RestoredSocket{};
}

long long out_rsts() { return snmp_counter("Tcp", "OutRsts"); }

}  // namespace seamless::testing
