#include "tests/integration/proxy/keeper_fixture.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace seamless::proxy::testing {

void install_binary(const std::string& path, const std::string& tag) {
  const std::string tmp = path + ".new";
  std::filesystem::copy_file(SEAMLESS_BINARY, tmp,
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(tmp, std::ios::app) << tag;
  ::chmod(tmp.c_str(), 0755);
  std::filesystem::rename(tmp, path);
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

double metric(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

ProxyKeeperTest::~ProxyKeeperTest() {
  proxy.reset();
  if (!bin_dir.empty()) std::filesystem::remove_all(bin_dir);
}

void ProxyKeeperTest::start_copy(const std::string& yaml, const std::string& wrapper) {
  char dir[] = "/tmp/seamless-keeper-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  bin_dir = dir;
  binary = bin_dir + "/seamless";
  install_binary(binary, "");
  proxy = std::make_unique<SeamlessProcess>(hosts.host.name(), yaml, wrapper, binary);
  ASSERT_TRUE(proxy->wait_ready());
}

void ProxyKeeperTest::open_streams(size_t n, const std::string& host) {
  std::vector<Endpoints> ends;
  for (size_t i = 0; i < n; ++i) {
    fds.push_back(client(host));
    const uint32_t seed = static_cast<uint32_t>(fds.size() * 7919);
    ends.push_back(Endpoints{fds.back().get(), {seed, 0, 0}, {seed, 0, 0}});
  }
  pump = std::make_unique<StreamPump>(std::move(ends), kEndless);
  ASSERT_TRUE(streams_advance(64 * 1024));
}

bool ProxyKeeperTest::streams_advance(uint64_t more) {
  std::vector<uint64_t> marks;
  for (const Endpoints& e : pump->progress()) marks.push_back(e.in.received + more);
  const bool ok = wait_until(
      [&] {
        if (!pump->errors().empty()) return true;
        const std::vector<Endpoints> now = pump->progress();
        for (size_t i = 0; i < now.size(); ++i) {
          if (now[i].in.received < marks[i]) return false;
        }
        return true;
      },
      std::chrono::seconds(30));
  EXPECT_EQ(pump->errors(), std::vector<std::string>{});
  if (!ok) {
    // Which streams stopped, and what the proxy said meanwhile: a flow left locked and
    // a socket restored wrong look alike from here.
    std::string short_of;
    const std::vector<Endpoints> now = pump->progress();
    for (size_t i = 0; i < now.size(); ++i) {
      if (now[i].in.received >= marks[i]) continue;
      short_of += " #" + std::to_string(i) + " at " + std::to_string(now[i].in.received) + " of " +
                  std::to_string(marks[i]);
    }
    // What the kernel thinks of the stuck sockets, and what the flow lock holds.
    seamless::testing::sh(hosts.host.exec("ss -tinm"));
    seamless::testing::sh(hosts.peer.exec("ss -tinm"));
    seamless::testing::sh(hosts.host.exec("nft list ruleset"));
    ADD_FAILURE() << "streams did not advance:" << short_of << "\n"
                  << (proxy ? proxy->log() : std::string("(no proxy)"));
  }
  return ok && pump->errors().empty();
}

std::string ProxyKeeperTest::bin_dir_for_test() const {
  return "/tmp/seamless-keeper-test-" + std::to_string(::getpid());
}

}  // namespace seamless::proxy::testing
