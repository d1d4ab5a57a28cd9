#include "repair/byte_accounting.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <algorithm>

#include "repair/sys.h"

namespace seamless::repair {
namespace {

// TIME_WAIT (6) and CLOSE (7) come after both FINs; the others are the proxy's
// half-closed states (TCP_REPAIR.md "Sequence accounting").
constexpr uint8_t kFinWait1 = 4, kFinWait2 = 5, kTimeWait = 6, kClose = 7, kCloseWait = 8,
                  kLastAck = 9, kClosing = 11;

constexpr int kConsistentReadAttempts = 64;

Result<LegCounters> read_once(Sys& sys, int fd) {
  TcpInfo info;
  if (sys.tcp_info(fd, &info) != 0) return Error::from_errno("TCP_INFO");
  int inq = 0, outq = 0;
  if (sys.ioctl_int(fd, SIOCINQ, &inq) != 0) return Error::from_errno("ioctl SIOCINQ");
  if (sys.ioctl_int(fd, SIOCOUTQ, &outq) != 0) return Error::from_errno("ioctl SIOCOUTQ");
  return LegCounters{info.state, info.bytes_acked, info.bytes_received, outq, inq};
}

}  // namespace

bool counts_fin_sent(uint8_t s) {
  return s == kFinWait1 || s == kFinWait2 || s == kClosing || s == kLastAck || s == kTimeWait ||
         s == kClose;
}

bool counts_fin_received(uint8_t s) {
  return s == kCloseWait || s == kLastAck || s == kClosing || s == kTimeWait || s == kClose;
}

Result<LegCounters> read_leg_counters(Sys& sys, int fd) {
  auto previous = read_once(sys, fd);
  if (!previous) return previous.error();
  for (int attempt = 0; attempt < kConsistentReadAttempts; ++attempt) {
    auto current = read_once(sys, fd);
    if (!current) return current.error();
    if (*current == *previous) return current;
    previous = std::move(current);
  }
  return Error::logic("counters of fd " + std::to_string(fd) + " kept moving");
}

int64_t bytes_written(const LegCounters& c, const LegBaseline& b) {
  return static_cast<int64_t>(c.bytes_acked) + c.outq - (counts_fin_sent(c.state) ? 1 : 0) -
         b.off_w;
}

int64_t bytes_consumed(const LegCounters& c, const LegBaseline& b) {
  return static_cast<int64_t>(c.bytes_received) - c.inq -
         (counts_fin_received(c.state) ? 1 : 0) - b.off_r;
}

int64_t header_written(const LegCounters& dst, const LegBaseline& b, int64_t header_len) {
  return std::min(bytes_written(dst, b), header_len);
}

Result<int64_t> overhang(const LegCounters& src, const LegBaseline& src_base,
                         const LegCounters& dst, const LegBaseline& dst_base,
                         int64_t dst_header_len) {
  const int64_t written = bytes_written(dst, dst_base);
  const int64_t consumed = bytes_consumed(src, src_base);
  const int64_t extra = written - header_written(dst, dst_base, dst_header_len) - consumed;
  if (extra < 0 || extra > src.inq) {
    return Error::logic("overhang " + std::to_string(extra) + " out of range (written " +
                        std::to_string(written) + ", consumed " + std::to_string(consumed) +
                        ", source holds " + std::to_string(src.inq) + ")");
  }
  return extra;
}

LegBaseline baseline_after_restore(const LegCounters& now, int64_t logical_written,
                                   int64_t logical_consumed) {
  // Solve W(now, base) == logical_written and R(now, base) == logical_consumed.
  LegBaseline zero;
  return {bytes_written(now, zero) - logical_written,
          bytes_consumed(now, zero) - logical_consumed};
}

void rebase_restored_pair(Sys& sys, int client_fd, int backend_fd, PairRecord& r) {
  const int64_t to_backend = int64_t(r.bytes_client_to_backend);
  const int64_t to_client = int64_t(r.bytes_backend_to_client);
  if (client_fd >= 0) {
    if (Result<LegCounters> c = read_leg_counters(sys, client_fd); c) {
      const LegBaseline b = baseline_after_restore(*c, to_client, to_backend);
      r.client_off_w = b.off_w;
      r.client_off_r = b.off_r;
    }
  }
  if (backend_fd >= 0) {
    if (Result<LegCounters> c = read_leg_counters(sys, backend_fd); c) {
      const int64_t header = int64_t(r.header_len) - int64_t(r.header_pending);
      const LegBaseline b = baseline_after_restore(*c, header + to_backend, to_client);
      r.backend_off_w = b.off_w;
      r.backend_off_r = b.off_r;
    }
  } else {
    r.backend_off_w = LegBaseline::connected().off_w;
    r.backend_off_r = LegBaseline::connected().off_r;
  }
}

}  // namespace seamless::repair
