// Numeric listen addresses for the metrics endpoint ("127.0.0.1:9100", "[::1]:9100"), and
// the few socket calls server.cc needs around civetweb. Internal to metrics/.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "base/result.h"

namespace seamless::metrics {

struct ListenAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// "a.b.c.d:port" or "[v6]:port"; no host names, as civetweb does not resolve them.
Result<ListenAddress> parse_listen_address(const std::string& listen);

// Binds a fresh socket (with SO_REUSEADDR, as civetweb does) and returns the errno, or 0.
int probe_bind_errno(const ListenAddress& address);

// Where a local client reaches a server bound to `bound` on `port`: a wildcard address
// becomes the loopback address of its family.
ListenAddress local_destination(const ListenAddress& bound, std::uint16_t port);

// Opens and drops a non-blocking connection to `address`: enough to wake a poll() on it.
void poke(const ListenAddress& address);

}  // namespace seamless::metrics
