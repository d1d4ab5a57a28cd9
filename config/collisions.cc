#include "config/collisions.h"

namespace seamless::config {
namespace {

// Whether v6only: true on the IPv6 side would let the two share the port. (The flag
// is ignored for IPv4 addresses, so passing true for both asks exactly that.)
bool v6only_would_separate(const SocketAddress& a, const SocketAddress& b) {
  return !listeners_overlap(a, true, b, true);
}

}  // namespace

void CollisionChecks::add_service_name(const std::string& name, const Located& at) {
  const auto [first, inserted] = service_names_.emplace(name, at.at);
  if (!inserted) {
    diag_.error(at.at, at.path,
                "duplicate service name " + quote(name) + " (first at " +
                    format_position(first->second) + ")");
  }
}

void CollisionChecks::add_listener(const SocketAddress& address, bool v6only, const Located& at) {
  for (const Listener& earlier : listeners_) {
    if (!listeners_overlap(address, v6only, earlier.address, earlier.v6only)) continue;
    std::string message = address.to_string();
    if (address == earlier.address) {
      message += " is already taken by " + earlier.path;
    } else {
      message += " overlaps " + earlier.address.to_string() + " of " + earlier.path;
    }
    message += " at " + format_position(earlier.at);
    if (v6only_would_separate(address, earlier.address)) {
      message += "; a dual-stack [::] listener also takes IPv4, v6only: true keeps it to IPv6";
    }
    diag_.error(at.at, at.path, message);
    break;  // one collision says enough about this listener
  }
  listeners_.push_back(Listener{address, v6only, at.path, at.at});
}

}  // namespace seamless::config
