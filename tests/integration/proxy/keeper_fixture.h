// The fixture of keeper tests (keeper_test.cc, crash_loop_test.cc,
// upgrade_failure_test.cc): seamless started from a private copy of the binary (so a
// test can replace or remove it), endless byte-checked streams through it, and a few
// probes of the keeper (its open fds, a metric sample).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/proxy/proxy_fixture.h"

namespace seamless::proxy::testing {

inline constexpr uint64_t kEndless = uint64_t{1} << 40;

// A copy of the built binary at `path`, put in place by rename like a package manager
// would; `tag` bytes appended make each copy a different file.
void install_binary(const std::string& path, const std::string& tag);

// How many fds `pid` has open.
size_t open_fds(pid_t pid);

// The value of the first sample line that starts with `series` ("name{labels}"), or -1.
double metric(const std::string& text, const std::string& series);

class ProxyKeeperTest : public ProxyTest {
 protected:
  ~ProxyKeeperTest() override;

  // Starts seamless from a copy of the binary in its own dir (so the test can replace
  // or remove it), with `wrapper` as in ProxyTest::start.
  void start_copy(const std::string& yaml, const std::string& wrapper = "");
  // Opens `n` clients (IPv4 unless `host` says otherwise) and pumps endless streams.
  void open_streams(size_t n, const std::string& host = TwoHosts::kHost4);
  // Waits until every stream has received `more` bytes beyond where it stands now.
  bool streams_advance(uint64_t more);

  std::string bin_dir_for_test() const;

  std::string bin_dir;
  std::string binary;
  std::vector<UniqueFd> fds;
  std::unique_ptr<StreamPump> pump;
};

}  // namespace seamless::proxy::testing
