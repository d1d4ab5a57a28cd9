// Private to config/: the schema of DESIGN.md §7 as code. One method per YAML
// mapping; each fills in what it can and reports what it cannot, so one pass finds
// every error. The Config it returns is meaningful only when no error was reported.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "config/collisions.h"
#include "config/config.h"
#include "config/yaml_reader.h"

namespace seamless::config {

class ConfigReader {
 public:
  explicit ConfigReader(Diagnostics& diag) : diag_(diag), collisions_(diag) {}

  Config read(const Located& root);

 private:
  // parse_service.cc
  std::vector<Service> read_services(const Located& value);
  Service read_service(const Located& value);
  void read_name(const MapReader& map, Service& service);
  void read_listen(const MapReader& map, Service& service);
  std::vector<Backend> read_backends(const Located& value);
  // `seen` holds the service's earlier backend addresses and where they were.
  std::optional<Backend> read_backend(const Located& value,
                                      std::vector<std::pair<SocketAddress, Position>>& seen);
  HealthCheck read_health_check(const Located& value);

  // parse_sections.cc
  Handoff read_handoff(const Located& value);
  Metrics read_metrics(const Located& value);
  Log read_log(const Located& value);

  Diagnostics& diag_;
  CollisionChecks collisions_;
};

}  // namespace seamless::config
