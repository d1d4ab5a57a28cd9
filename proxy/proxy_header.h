// The PROXY protocol header (HAProxy's spec, versions 1 and 2) that tells a backend who
// the client was. Pure: no sockets. Built once per connection from the client's address
// (the accepted socket's peer) and the address the client connected to (its local
// address), and written to the backend before any payload.
//
// An IPv4 client on a dual-stack [::] listener has ::ffff:a.b.c.d addresses: the header
// names it as the IPv4 client it is (TCP4 / AF_INET).
#pragma once

#include <string>

#include "config/config.h"
#include "repair/endpoint.h"

namespace seamless::proxy {

// "PROXY TCP4 198.18.0.1 198.18.0.2 40000 7000\r\n" (at most 107 bytes).
std::string proxy_header_v1(const repair::Endpoint& client, const repair::Endpoint& local);

// The 16-byte fixed part (signature, version 2 + PROXY command, family, length) and the
// address block: 28 bytes for IPv4, 52 for IPv6. No TLVs.
std::string proxy_header_v2(const repair::Endpoint& client, const repair::Endpoint& local);

// The header for `version`; empty for kOff.
std::string build_proxy_header(config::ProxyProtocol version, const repair::Endpoint& client,
                               const repair::Endpoint& local);

}  // namespace seamless::proxy
