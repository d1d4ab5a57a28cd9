// The services list: each service, its backends and its health check.
#include <algorithm>

#include "config/config_reader.h"
#include "config/duration.h"

namespace seamless::config {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kMaxServiceNameLength = 64;
constexpr uint32_t kMaxWeight = 256;
constexpr uint32_t kMaxConnections = 1'000'000;
constexpr uint32_t kMaxRiseFall = 100;

// Names become metric labels and file records: keep them to a safe alphabet.
bool is_service_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxServiceNameLength &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
         });
}

}  // namespace

std::vector<Service> ConfigReader::read_services(const Located& value) {
  std::vector<Service> services;
  const std::optional<std::vector<Located>> items = read_sequence(value, diag_);
  if (!items) return services;
  if (items->empty()) diag_.error(value.at, value.path, "must list at least one service");
  for (const Located& item : *items) {
    if (diag_.full()) break;
    services.push_back(read_service(item));
  }
  return services;
}

Service ConfigReader::read_service(const Located& value) {
  const MapReader map(value,
                      {"name", "listen", "v6only", "backends", "balance", "connect_timeout",
                       "idle_timeout", "max_connections", "proxy_protocol", "health_check"},
                      diag_);
  Service service;
  if (!map.is_map()) return service;

  read_name(map, service);
  read_listen(map, service);
  if (const std::optional<Located> backends = map.require("backends")) {
    service.backends = read_backends(*backends);
  }
  read_optional(map, "balance", service.balance,
                [&](const Located& v) { return read_enum(v, kBalanceNames, diag_); });
  read_optional(map, "connect_timeout", service.connect_timeout,
                [&](const Located& v) { return read_duration(v, milliseconds(1), diag_); });
  read_optional(map, "idle_timeout", service.idle_timeout,
                [&](const Located& v) { return read_duration(v, milliseconds(0), diag_); });
  read_optional(map, "max_connections", service.max_connections,
                [&](const Located& v) { return read_uint(v, 1, kMaxConnections, diag_); });
  read_optional(map, "proxy_protocol", service.proxy_protocol,
                [&](const Located& v) { return read_enum(v, kProxyProtocolNames, diag_); });
  read_optional(map, "health_check", service.health_check,
                [&](const Located& v) { return std::optional(read_health_check(v)); });
  return service;
}

void ConfigReader::read_name(const MapReader& map, Service& service) {
  const std::optional<Located> name = map.require("name");
  if (!name) return;
  const std::optional<std::string> text = read_string(*name, diag_);
  if (!text) return;
  if (!is_service_name(*text)) {
    diag_.error(name->at, name->path,
                "invalid service name " + quote(*text) +
                    " (expected 1 to 64 characters from a-z, 0-9, _ and -)");
    return;
  }
  service.name = *text;
  collisions_.add_service_name(*text, *name);
}

void ConfigReader::read_listen(const MapReader& map, Service& service) {
  const std::optional<Located> v6only = map.get("v6only");
  if (v6only) service.v6only = read_bool(*v6only, diag_).value_or(false);

  const std::optional<Located> listen = map.require("listen");
  if (!listen) return;
  const std::optional<SocketAddress> address = read_address(*listen, diag_);
  if (!address) return;
  service.listen = *address;
  // IPV6_V6ONLY exists only on IPv6 sockets, and a mapped address cannot be bound with it.
  if (service.v6only && (address->family != AF_INET6 || address->is_v4_mapped())) {
    diag_.error(v6only->at, v6only->path,
                "v6only: true needs an IPv6 listen address, not " + address->to_string());
  }
  collisions_.add_listener(*address, service.v6only, *listen);
}

std::vector<Backend> ConfigReader::read_backends(const Located& value) {
  std::vector<Backend> backends;
  const std::optional<std::vector<Located>> items = read_sequence(value, diag_);
  if (!items) return backends;
  if (items->empty()) diag_.error(value.at, value.path, "must list at least one backend");
  std::vector<std::pair<SocketAddress, Position>> seen;
  for (const Located& item : *items) {
    if (diag_.full()) break;
    if (std::optional<Backend> backend = read_backend(item, seen)) backends.push_back(*backend);
  }
  return backends;
}

std::optional<Backend> ConfigReader::read_backend(
    const Located& value, std::vector<std::pair<SocketAddress, Position>>& seen) {
  const MapReader map(value, {"address", "weight"}, diag_);
  if (!map.is_map()) return std::nullopt;
  Backend backend;
  read_optional(map, "weight", backend.weight,
                [&](const Located& v) { return read_uint(v, 1, kMaxWeight, diag_); });
  const std::optional<Located> address = map.require("address");
  if (!address) return std::nullopt;
  const std::optional<SocketAddress> parsed = read_address(*address, diag_);
  if (!parsed) return std::nullopt;
  if (parsed->is_wildcard()) {
    diag_.error(address->at, address->path,
                parsed->to_string() + " is a wildcard; a backend needs a specific address");
    return std::nullopt;
  }
  // Pairs name their backend by address (DESIGN.md §2), so an address may appear once.
  const auto twin = std::find_if(seen.begin(), seen.end(),
                                 [&](const auto& earlier) { return earlier.first == *parsed; });
  if (twin != seen.end()) {
    diag_.error(address->at, address->path,
                "duplicate backend " + parsed->to_string() + " (first at " +
                    format_position(twin->second) + ")");
    return std::nullopt;
  }
  seen.emplace_back(*parsed, address->at);
  backend.address = *parsed;
  return backend;
}

HealthCheck ConfigReader::read_health_check(const Located& value) {
  const MapReader map(value, {"interval", "timeout", "rise", "fall"}, diag_);
  HealthCheck check;
  if (!map.is_map()) return check;
  const auto duration = [&](const Located& v) { return read_duration(v, milliseconds(1), diag_); };
  const auto count = [&](const Located& v) { return read_uint(v, 1, kMaxRiseFall, diag_); };
  const bool interval_ok = read_optional(map, "interval", check.interval, duration);
  const bool timeout_ok = read_optional(map, "timeout", check.timeout, duration);
  read_optional(map, "rise", check.rise, count);
  read_optional(map, "fall", check.fall, count);

  // A probe still running when the next one is due would overlap it. (Compared only
  // when both values are sound; a bad one has its own error already.)
  if (interval_ok && timeout_ok && check.timeout >= check.interval) {
    const Located where = map.get("timeout").value_or(map.get("interval").value_or(value));
    diag_.error(where.at, where.path,
                "timeout " + format_duration(check.timeout) + " must be shorter than interval " +
                    format_duration(check.interval));
  }
  return check;
}

}  // namespace seamless::config
