// The effective config (defaults filled in) in one fixed form, and its digest.
// Two files that mean the same config (whatever their comments, key order, quoting
// or spelling of durations) give the same text and so the same digest; the handoff
// file records the digest, and `seamless check` prints it.
#pragma once

#include <string>

#include "config/config.h"

namespace seamless::config {

// YAML with every key, in schema order, durations in their largest exact unit,
// addresses in RFC 5952 form, strings double-quoted. parse_config() of it gives
// `config` back. Written by hand, not by yaml-cpp's emitter, so that the digest
// does not move with the yaml-cpp version.
std::string canonical_yaml(const Config& config);

// SHA-256 of canonical_yaml(config) as 64 lowercase hex digits. Adding a field to
// Config changes every digest, which is right: the effective config changed.
std::string config_digest(const Config& config);

}  // namespace seamless::config
