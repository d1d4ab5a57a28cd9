// The config-file spelling of each enum value, in one table per enum: to_string,
// the parser and its error messages ("expected a, b or c") all read these.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace seamless::config {

template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

inline constexpr std::array<EnumName<Balance>, 3> kBalanceNames = {{
    {Balance::kRoundRobin, "round_robin"},
    {Balance::kLeastConn, "least_conn"},
    {Balance::kSourceHash, "source_hash"},
}};
inline constexpr std::array<EnumName<ProxyProtocol>, 3> kProxyProtocolNames = {{
    {ProxyProtocol::kOff, "off"},
    {ProxyProtocol::kV1, "v1"},
    {ProxyProtocol::kV2, "v2"},
}};
inline constexpr std::array<EnumName<LogLevel>, 4> kLogLevelNames = {{
    {LogLevel::kDebug, "debug"},
    {LogLevel::kInfo, "info"},
    {LogLevel::kWarn, "warn"},
    {LogLevel::kError, "error"},
}};
inline constexpr std::array<EnumName<LogFormat>, 2> kLogFormatNames = {{
    {LogFormat::kText, "text"},
    {LogFormat::kJson, "json"},
}};

template <typename E, std::size_t N>
std::optional<E> enum_from_name(const std::array<EnumName<E>, N>& table, std::string_view name) {
  for (const EnumName<E>& entry : table) {
    if (entry.name == name) return entry.value;
  }
  return std::nullopt;
}

template <typename E, std::size_t N>
std::string_view enum_to_name(const std::array<EnumName<E>, N>& table, E value) {
  for (const EnumName<E>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "?";  // only for a value cast from outside the enum
}

// "round_robin, least_conn or source_hash"
template <typename E, std::size_t N>
std::string enum_choices(const std::array<EnumName<E>, N>& table) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += table[i].name;
  }
  return out;
}

}  // namespace seamless::config
