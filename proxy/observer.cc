#include "proxy/observer.h"

namespace seamless::proxy {

std::string_view to_string(CloseReason reason) {
  switch (reason) {
    case CloseReason::kFinished:
      return "finished";
    case CloseReason::kClientReset:
      return "client reset";
    case CloseReason::kBackendReset:
      return "backend reset";
    case CloseReason::kConnectFailed:
      return "no backend reachable";
    case CloseReason::kIdle:
      return "idle timeout";
    case CloseReason::kDrain:
      return "drain timeout";
    case CloseReason::kError:
      return "error";
  }
  return "?";
}

}  // namespace seamless::proxy
