#include "config/digest.h"

#include <cstdio>

#include "config/duration.h"
#include "config/sha256.h"

namespace seamless::config {
namespace {

// A YAML double-quoted scalar. Validation keeps control bytes out of every string,
// but escaping them anyway keeps the output parseable whatever the Config holds.
std::string yaml_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[5];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string yaml_bool(bool value) { return value ? "true" : "false"; }

// Appends "<indent>key: value\n".
void line(std::string& out, int indent, std::string_view key, std::string_view value) {
  out.append(static_cast<std::size_t>(indent), ' ');
  out += key;
  out += ':';
  if (!value.empty()) {
    out += ' ';
    out += value;
  }
  out += '\n';
}

void append_service(std::string& out, const Service& service) {
  line(out, 2, "- name", yaml_string(service.name));
  line(out, 4, "listen", yaml_string(service.listen.to_string()));
  line(out, 4, "v6only", yaml_bool(service.v6only));
  line(out, 4, "backends", "");
  for (const Backend& backend : service.backends) {
    line(out, 6, "- address", yaml_string(backend.address.to_string()));
    line(out, 8, "weight", std::to_string(backend.weight));
  }
  line(out, 4, "balance", to_string(service.balance));
  line(out, 4, "connect_timeout", format_duration(service.connect_timeout));
  line(out, 4, "idle_timeout", format_duration(service.idle_timeout));
  line(out, 4, "max_connections", std::to_string(service.max_connections));
  line(out, 4, "proxy_protocol", to_string(service.proxy_protocol));
  line(out, 4, "health_check", "");
  line(out, 6, "interval", format_duration(service.health_check.interval));
  line(out, 6, "timeout", format_duration(service.health_check.timeout));
  line(out, 6, "rise", std::to_string(service.health_check.rise));
  line(out, 6, "fall", std::to_string(service.health_check.fall));
}

}  // namespace

std::string canonical_yaml(const Config& config) {
  std::string out;
  line(out, 0, "services", config.services.empty() ? "[]" : "");
  for (const Service& service : config.services) append_service(out, service);
  line(out, 0, "handoff", "");
  line(out, 2, "dir", yaml_string(config.handoff.dir));
  line(out, 2, "lock_timeout", format_duration(config.handoff.lock_timeout));
  line(out, 2, "nft_table", yaml_string(config.handoff.nft_table));
  line(out, 0, "drain_timeout", format_duration(config.drain_timeout));
  line(out, 0, "metrics", "");
  line(out, 2, "listen",
       config.metrics.listen ? yaml_string(config.metrics.listen->to_string()) : "off");
  line(out, 0, "log", "");
  line(out, 2, "level", to_string(config.log.level));
  line(out, 2, "format", to_string(config.log.format));
  return out;
}

std::string config_digest(const Config& config) { return sha256_hex(canonical_yaml(config)); }

}  // namespace seamless::config
