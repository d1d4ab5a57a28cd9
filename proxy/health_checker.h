// HealthChecker: the active check of one backend, a TCP connect every `interval` that
// must complete within `timeout`. Results go through HealthState (rise/fall); the
// verdict is written to the backend's runtime (which the balancer reads) and to the
// shared metrics segment (seamless_backend_up), where a restarted worker finds it.
//
// A successful probe is closed with an RST (SO_LINGER {1,0}): it carries no data, and a
// FIN would leave a TIME_WAIT socket per check on the proxy host.
#pragma once

#include <uv.h>

#include <string>

#include "base/result.h"
#include "config/config.h"
#include "proxy/health_state.h"
#include "proxy/logging.h"
#include "proxy/polled_socket.h"
#include "proxy/uv_handle.h"

namespace seamless::proxy {

struct BackendRuntime;

class HealthChecker {
 public:
  // Borrows `backend`, which must outlive the checker.
  HealthChecker(uv_loop_t* loop, std::string service, const config::HealthCheck& check,
                BackendRuntime& backend, Logger log);
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The first check runs at once, then one per interval.
  Status start();
  // Stops checking; the verdict stays as it is.
  void stop();

 private:
  static void on_tick(uv_timer_t* timer);
  static void on_timeout(uv_timer_t* timer);
  static void on_probe(uv_poll_t* handle, int status, int events);
  void probe();
  void finish_probe(int error);

  uv_loop_t* loop_;
  std::string service_;
  config::HealthCheck check_;
  BackendRuntime& backend_;
  Logger log_;
  HealthState state_;
  UvHandle<uv_timer_t> interval_;
  UvHandle<uv_timer_t> timeout_;
  PolledSocket probe_;
  bool reported_ = false;  // the verdict has been written to metrics at least once
};

}  // namespace seamless::proxy
