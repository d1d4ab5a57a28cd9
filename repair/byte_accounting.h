// Byte accounting from kernel counters alone (DESIGN.md §3): how many bytes the
// application wrote to a socket and consumed from it, and so how many bytes a
// forwarding step that was cut between send() and the discarding recv(MSG_TRUNC)
// left both sent to the destination and still queued at the source (the overhang,
// which must be discarded before a dump, or it is delivered twice).
//
//   W(s) = tcpi_bytes_acked + SIOCOUTQ - FIN_SENT - off_w     (bytes written to s)
//   R(s) = tcpi_bytes_received - SIOCINQ - FIN_RCVD - off_r   (bytes consumed from s)
//   header(dst)          = min(W(dst), header_len)
//   overhang(src -> dst) = W(dst) - header(dst) - R(src)
//
// Baselines: off_w = 1 for a connect()ed socket (its SYN counts as acked), 0 for an
// accepted one; off_r = 0. A restored socket's counters restart at zero and its
// restored queues pass through them, so after a restore the baselines are re-derived
// with baseline_after_restore(). All arithmetic is signed 64-bit: a negative result is
// a bug to report, never a size to act on.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "repair/pair_record.h"

namespace seamless::repair {

class Sys;

struct LegCounters {
  uint8_t state = 0;  // kernel TCP state
  uint64_t bytes_acked = 0;
  uint64_t bytes_received = 0;
  int64_t outq = 0;  // SIOCOUTQ: unacknowledged + unsent, our FIN included while unacked
  int64_t inq = 0;   // SIOCINQ: unread data, never a FIN

  bool operator==(const LegCounters&) const = default;
};

struct LegBaseline {
  int64_t off_w = 0;
  int64_t off_r = 0;

  static LegBaseline accepted() { return {0, 0}; }
  static LegBaseline connected() { return {1, 0}; }
  bool operator==(const LegBaseline&) const = default;
};

// Whether our FIN / the peer's FIN occupies a sequence number in this state.
bool counts_fin_sent(uint8_t state);
bool counts_fin_received(uint8_t state);

// Reads TCP_INFO, the two ioctls, and TCP_INFO again until two rounds agree: a
// single round is wrong now and then while the peer keeps sending.
Result<LegCounters> read_leg_counters(Sys& sys, int fd);

int64_t bytes_written(const LegCounters& c, const LegBaseline& b);
int64_t bytes_consumed(const LegCounters& c, const LegBaseline& b);

// PROXY header bytes actually written to the backend leg.
int64_t header_written(const LegCounters& dst, const LegBaseline& b, int64_t header_len);

// Bytes both sent to dst and still queued at src, to be discarded from src's receive
// queue (recv MSG_TRUNC) before a dump. An error if negative or larger than what src
// holds: the counters then contradict the forwarding discipline.
Result<int64_t> overhang(const LegCounters& src, const LegBaseline& src_base,
                         const LegCounters& dst, const LegBaseline& dst_base,
                         int64_t dst_header_len);

// Baseline for a socket whose counters restarted (a restore) so that W and R continue
// from the logical totals carried in the pair's record.
LegBaseline baseline_after_restore(const LegCounters& now, int64_t logical_written,
                                   int64_t logical_consumed);

// The baselines of a restored pair's legs in `record`, from their counters now and the
// logical totals the record carries (DESIGN §3). Right only while nothing has been
// forwarded on the restored sockets yet. A leg with no socket (-1: its backend
// connects afresh) starts its own count: off_w = 1 for the SYN, off_r = 0.
void rebase_restored_pair(Sys& sys, int client_fd, int backend_fd, PairRecord& record);

}  // namespace seamless::repair
