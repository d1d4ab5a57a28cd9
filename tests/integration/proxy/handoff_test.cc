// The worker's side of a handoff, in process: worker A quiesces between two loop
// callbacks and hands over its listeners and pairs (fds + records); worker B adopts them
// and carries on. Streams in flight across the switch arrive intact, with no reset and
// no FIN — the property the keeper (DESIGN §2) will build on.
#include <gtest/gtest.h>

#include <thread>

#include "config/load.h"
#include "metrics/metrics.h"
#include "metrics/segment.h"
#include "proxy/worker.h"
#include "tests/integration/proxy/proxy_fixture.h"

namespace seamless::proxy::testing {
namespace {

// A Worker running on its own thread inside a test namespace (so that every socket it
// creates — listeners, backend connects, health checks — lives there).
class ThreadWorker {
 public:
  ThreadWorker(const seamless::testing::NetNamespace& ns, const config::Config& config,
               metrics::Metrics& metrics, std::vector<ListenerFd> listeners,
               std::vector<DetachedPair> pairs)
      : thread_([&, listeners = std::move(listeners), pairs = std::move(pairs)]() mutable {
          InNetns in(ns);
          WorkerOptions options;
          options.handle_signals = false;
          Result<std::unique_ptr<Worker>> w =
              Worker::create(config, metrics, null_logger(), observer_, options);
          ASSERT_TRUE(w.ok()) << w.error().message;
          worker_ = std::move(*w);
          const Status listening = listeners.empty()
                                       ? worker_->open_listeners()
                                       : worker_->adopt_listeners(std::move(listeners));
          ASSERT_TRUE(listening.ok()) << listening.error().message;
          ASSERT_TRUE(worker_->adopt_pairs(std::move(pairs)).ok());
          ready_ = true;
          exit_code_ = worker_->run();
        }) {
    EXPECT_TRUE(wait_until([&] { return ready_.load(); }));
  }
  ~ThreadWorker() {
    if (thread_.joinable()) {
      worker_->request_drain();
      thread_.join();
    }
  }

  // Quiesces and waits; then the listeners and pairs are the caller's.
  void quiesce() {
    worker_->request_quiesce();
    thread_.join();
  }
  std::vector<ListenerFd> listeners() { return worker_->take_listeners(); }
  std::vector<DetachedPair> pairs() { return worker_->take_pairs(); }

 private:
  NullPairObserver observer_;
  std::unique_ptr<Worker> worker_;
  std::atomic<bool> ready_{false};
  int exit_code_ = -1;
  std::thread thread_;
};

config::Config parse(const std::string& yaml) {
  config::ConfigParse parsed = config::parse_config(yaml, "test.yaml");
  EXPECT_TRUE(parsed.ok()) << (parsed.errors.empty() ? "" : parsed.errors.front());
  return *parsed.config;
}

TEST_F(ProxyTest, QuiescedPairsContinueInTheNextWorker) {
  auto echo = backend(7101);
  const config::Config config = parse(config_yaml(ServiceSpec{}, "", /*with_metrics=*/false));
  Result<metrics::MetricsSegment> segment = metrics::MetricsSegment::create();
  ASSERT_TRUE(segment.ok());
  metrics::Metrics metrics(*segment);

  auto first = std::make_unique<ThreadWorker>(
      hosts.host, config, metrics, std::vector<ListenerFd>{}, std::vector<DetachedPair>{});
  constexpr uint64_t kTarget = 32 << 20;
  std::vector<UniqueFd> fds;
  std::vector<Endpoints> ends;
  for (uint32_t i = 0; i < 10; ++i) {
    fds.push_back(client());
    ends.push_back(Endpoints{fds.back().get(), {i, 0, 0}, {i, 0, 0}});
  }
  StreamPump pump(std::move(ends), kTarget);
  ASSERT_TRUE(wait_until([&] {
    for (const Endpoints& e : pump.progress()) {
      if (e.in.received < (1 << 20)) return false;
    }
    return true;
  }));

  first->quiesce();
  std::vector<ListenerFd> listeners = first->listeners();
  std::vector<DetachedPair> pairs = first->pairs();
  first.reset();
  ASSERT_EQ(listeners.size(), 1u);
  ASSERT_EQ(pairs.size(), 10u);
  for (const DetachedPair& p : pairs) {
    EXPECT_TRUE(p.client.valid());
    EXPECT_TRUE(p.backend.valid());
    EXPECT_EQ(p.record.service, "pg");
    EXPECT_EQ(p.record.backend, "198.18.0.1:7101");
    EXPECT_GT(p.record.bytes_client_to_backend, 0u);
  }

  ThreadWorker second(hosts.host, config, metrics, std::move(listeners), std::move(pairs));
  ASSERT_TRUE(wait_until(
      [&] {
        if (!pump.errors().empty()) return true;
        for (const Endpoints& e : pump.progress()) {
          if (e.in.received < kTarget) return false;
        }
        return true;
      },
      std::chrono::seconds(120)));
  pump.stop();
  EXPECT_EQ(pump.errors(), std::vector<std::string>{});
  EXPECT_EQ(echo->resets(), 0u);
  EXPECT_EQ(echo->eofs(), 0u);
  // The listener moved too: new clients are served by the second worker.
  UniqueFd late = client();
  EXPECT_TRUE(echo_roundtrip(late.get()));
  // Counted once, not once per worker.
  EXPECT_EQ(metrics.find_service("pg")->total(), 11u);
  EXPECT_EQ(metrics.find_service("pg")->active(), 11);
  // Clients leave in order; the second worker's drain then ends with its last pair.
  fds.clear();
  late.reset();
  EXPECT_TRUE(wait_until([&] { return metrics.find_service("pg")->active() == 0; }));
}

TEST_F(ProxyTest, ARestartedWorkerKeepsItsPredecessorsHealthVerdict) {
  auto a = backend(7101);
  auto b = backend(7102);
  ServiceSpec s;
  s.backends = {"198.18.0.1:7101", "198.18.0.1:7102"};
  // One check at start, none after; rise 2: that one good check cannot bring 7101 back.
  s.extra = "    health_check:\n      interval: 1h\n      timeout: 1s\n      rise: 2\n";
  const config::Config config = parse(config_yaml(s, "", /*with_metrics=*/false));
  Result<metrics::MetricsSegment> segment = metrics::MetricsSegment::create();
  ASSERT_TRUE(segment.ok());
  metrics::Metrics metrics(*segment);
  // What the previous worker found, as the shared segment keeps it.
  ASSERT_TRUE(metrics.set_backend_up("pg", "198.18.0.1:7101", false).ok());

  ThreadWorker worker(hosts.host, config, metrics, {}, {});
  for (int i = 0; i < 4; ++i) {
    UniqueFd c = client();
    ASSERT_TRUE(echo_roundtrip(c.get()));
  }
  EXPECT_EQ(a->data_connections(), 0u);
  EXPECT_EQ(b->data_connections(), 4u);
  EXPECT_EQ(metrics.backend_up("pg", "198.18.0.1:7101"), false);
}

}  // namespace
}  // namespace seamless::proxy::testing
