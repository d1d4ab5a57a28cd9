// Socket plumbing for the worker: listeners, non-blocking connects, the options every
// proxied socket carries, and address conversions. Errors read like
// "listen 127.0.0.1:7000: address already in use".
#pragma once

#include <sys/socket.h>

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "config/socket_address.h"
#include "repair/endpoint.h"

namespace seamless::proxy {

// strerror() with a lower-case first letter, to read well inside a sentence.
std::string errno_text(int err);

repair::Endpoint to_endpoint(const config::SocketAddress& address);

// A bound, listening, non-blocking, close-on-exec socket. `v6only` applies to IPv6.
Result<UniqueFd> open_listener(const config::SocketAddress& address, bool v6only);

// Options for every proxied socket: SO_OOBINLINE (urgent data would otherwise stop
// SIOCINQ at the mark, DESIGN §3) and TCP_NODELAY (the proxy must not add latency to
// small writes). No TCP Fast Open, on purpose.
Status set_proxied_options(int fd);

// A non-blocking connect to `target`. The connect normally completes later: watch the
// fd for writable, then read SO_ERROR. An error the kernel reports at once comes back
// as an Error with its errno.
Result<UniqueFd> start_connect(const repair::Endpoint& target, bool proxied);

// getsockname / getpeername as Endpoints; a default Endpoint if the call fails.
repair::Endpoint local_endpoint(int fd);
repair::Endpoint peer_endpoint(int fd);

}  // namespace seamless::proxy
