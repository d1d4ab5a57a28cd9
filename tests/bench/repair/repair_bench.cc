// repair_bench: per-socket cost of dump, close and restore through the repair
// library, against the bare syscall sequences (bare_sequence.cc), on N idle
// loopback connections; and lock/unlock time for N flows. Runs in a private network
// namespace of its own (needs root). Prints figures; asserts nothing about time.
//
//   repair_bench [N ...]        default: 1000 5000
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "repair/checkpoint.h"
#include "repair/flow_lock.h"
#include "repair/socket_image.h"
#include "repair/sys.h"
#include "tests/bench/repair/bare_sequence.h"

namespace seamless::bench {
namespace {

using Clock = std::chrono::steady_clock;

double micros_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "repair_bench: %s\n", what.c_str());
  std::exit(1);
}

struct Connections {
  std::vector<UniqueFd> server;  // migrated
  std::vector<UniqueFd> client;
};

Connections open_connections(size_t n) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listener.get(), 4096) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    die("listen on 127.0.0.1");
  }
  Connections c;
  for (size_t i = 0; i < n; ++i) {
    UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!client || ::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      die("connect #" + std::to_string(i) + " (fd limit " + std::to_string(sysconf(_SC_OPEN_MAX)) +
          ")");
    }
    UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!server) die("accept");
    c.client.push_back(std::move(client));
    c.server.push_back(std::move(server));
  }
  return c;
}

std::vector<repair::Flow> flows_of(const Connections& c) {
  repair::Sys sys;
  std::vector<repair::Flow> flows;
  for (const auto& fd : c.server) {
    auto flow = repair::flow_of_socket(sys, fd.get());
    if (!flow) die(flow.error().message);
    flows.push_back(*flow);
  }
  return flows;
}

struct Timings {
  double dump = 0, close = 0, restore = 0;  // µs per socket
};

Timings library_cycle(Connections& c) {
  repair::Sys sys;
  Timings t;
  std::vector<repair::SocketImage> images;
  images.reserve(c.server.size());
  auto start = Clock::now();
  for (auto& fd : c.server) {
    auto image = repair::dump_socket(sys, fd.get());
    if (!image) die(image.error().message);
    images.push_back(std::move(image).value());
  }
  t.dump = micros_since(start);
  start = Clock::now();
  for (auto& fd : c.server) fd.reset();
  t.close = micros_since(start);
  repair::SocketRestorer restorer(sys);
  start = Clock::now();
  for (size_t i = 0; i < images.size(); ++i) {
    auto restored = restorer.restore(images[i]);
    if (!restored) die(restored.error().message);
    if (auto st = restorer.finish(restored->fd.get(), images[i]); !st) die(st.error().message);
    c.server[i] = std::move(restored->fd);
  }
  t.restore = micros_since(start);
  return t;
}

Timings bare_cycle(Connections& c) {
  Timings t;
  std::vector<BareImage> images(c.server.size());
  auto start = Clock::now();
  for (size_t i = 0; i < c.server.size(); ++i) {
    if (!bare_dump(c.server[i].get(), &images[i])) die("bare dump");
  }
  t.dump = micros_since(start);
  start = Clock::now();
  for (auto& fd : c.server) fd.reset();
  t.close = micros_since(start);
  start = Clock::now();
  for (size_t i = 0; i < images.size(); ++i) c.server[i].reset(bare_restore(images[i]));
  t.restore = micros_since(start);
  return t;
}

// Every connection still carries a byte each way after the cycles.
void check_alive(Connections& c) {
  for (size_t i = 0; i < c.server.size(); ++i) {
    char b = 'x';
    if (::send(c.server[i].get(), &b, 1, MSG_NOSIGNAL) != 1 ||
        ::recv(c.client[i].get(), &b, 1, 0) != 1 ||
        ::send(c.client[i].get(), &b, 1, MSG_NOSIGNAL) != 1) {
      die("connection " + std::to_string(i) + " broke");
    }
    for (int tries = 0; ::recv(c.server[i].get(), &b, 1, MSG_DONTWAIT) != 1; ++tries) {
      if (tries > 100000) die("connection " + std::to_string(i) + " lost a byte");
      sched_yield();
    }
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run(size_t n, int rounds) {
  Connections c = open_connections(n);
  auto lock = repair::FlowLock::open("seamless_bench");
  if (!lock) die(lock.error().message);
  const auto flows = flows_of(c);
  std::vector<double> lib[3], bare[3], lock_ms, unlock_ms;
  for (int r = 0; r < rounds; ++r) {
    auto start = Clock::now();
    if (auto st = lock->lock(flows, std::chrono::seconds(30)); !st) die(st.error().message);
    lock_ms.push_back(micros_since(start) / 1000);
    const Timings l = library_cycle(c);
    const Timings b = bare_cycle(c);
    start = Clock::now();
    if (auto st = lock->unlock(flows); !st) die(st.error().message);
    unlock_ms.push_back(micros_since(start) / 1000);
    for (auto [v, t] : {std::pair{lib, l}, std::pair{bare, b}}) {
      v[0].push_back(t.dump / n);
      v[1].push_back(t.close / n);
      v[2].push_back(t.restore / n);
    }
  }
  check_alive(c);
  const char* names[] = {"dump", "close", "restore"};
  for (int p = 0; p < 3; ++p) {
    const double l = median(lib[p]), b = median(bare[p]);
    std::printf("%7zu  %-8s %10.2f %10.2f %7.2fx\n", n, names[p], l, b, l / b);
  }
  std::printf("%7zu  lock %zu flows: %.2f ms, unlock: %.2f ms (one batch each)\n", n, n,
              median(lock_ms), median(unlock_ms));
  if (auto st = lock->destroy(); !st) die(st.error().message);
}

}  // namespace
}  // namespace seamless::bench

int main(int argc, char** argv) {
  std::vector<size_t> counts;
  for (int i = 1; i < argc; ++i) counts.push_back(std::strtoul(argv[i], nullptr, 10));
  if (counts.empty()) counts = {1000, 5000};
  if (::unshare(CLONE_NEWNET) != 0) {
    std::perror("repair_bench: unshare(CLONE_NEWNET) (needs root)");
    return 1;
  }
  if (std::system("ip link set lo up") != 0) return 1;
  std::printf("sockets  phase    library µs  bare µs   ratio   (per socket, median of 5 rounds)\n");
  for (size_t n : counts) seamless::bench::run(n, 5);
  return 0;
}
