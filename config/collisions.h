// Private to config/: what must not collide across the whole file, checked as the
// values are read, so each error can point at both places.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "config/socket_address.h"
#include "config/yaml_reader.h"

namespace seamless::config {

class CollisionChecks {
 public:
  explicit CollisionChecks(Diagnostics& diag) : diag_(diag) {}

  // Service names label metrics and handoff records, so each names one service.
  void add_service_name(const std::string& name, const Located& at);
  // Two listeners that overlap (listeners_overlap) would fail the second bind(), and
  // then the proxy could not start: report it now, at the later one.
  void add_listener(const SocketAddress& address, bool v6only, const Located& at);

 private:
  struct Listener {
    SocketAddress address;
    bool v6only;
    std::string path;
    Position at;
  };

  Diagnostics& diag_;
  std::unordered_map<std::string, Position> service_names_;
  std::vector<Listener> listeners_;
};

}  // namespace seamless::config
