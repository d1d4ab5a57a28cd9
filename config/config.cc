#include "config/config.h"

#include "config/enum_names.h"

namespace seamless::config {

std::string_view to_string(Balance value) { return enum_to_name(kBalanceNames, value); }
std::string_view to_string(ProxyProtocol value) { return enum_to_name(kProxyProtocolNames, value); }
std::string_view to_string(LogLevel value) { return enum_to_name(kLogLevelNames, value); }
std::string_view to_string(LogFormat value) { return enum_to_name(kLogFormatNames, value); }

SocketAddress default_metrics_listen() {
  SocketAddress address;
  address.family = AF_INET;
  address.bytes[0] = 127;
  address.bytes[3] = 1;
  address.port = 9100;
  return address;
}

}  // namespace seamless::config
