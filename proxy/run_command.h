// `seamless run --config FILE`: runs the worker in the foreground (the keeper of DESIGN
// §2 comes later and will spawn this same worker). Exit codes: 0 after a drain, 1 on a
// runtime failure (e.g. "service pg: listen 127.0.0.1:7000: address already in use"),
// 2 for a bad config (the same errors `seamless check` prints).
#pragma once

#include <string>

namespace seamless::proxy {

int run_command(const std::string& config_path);

}  // namespace seamless::proxy
