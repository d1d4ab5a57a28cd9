// The bare TCP_REPAIR syscall sequences, with no error context, no image type and
// no options beyond what an idle loopback connection needs: the floor that the
// library's cost is compared against in repair_bench.
#pragma once

#include <cstdint>
#include <string>

namespace seamless::bench {

struct BareImage {
  uint32_t snd_seq = 0, rcv_seq = 0, mss = 0, ts = 0;
  int wscale_snd = 0, wscale_rcv = 0;
  std::string sendq, recvq;
  uint32_t window[5] = {};
  char local[28] = {}, peer[28] = {};
  unsigned addr_len = 0;
};

bool bare_dump(int fd, BareImage* out);
int bare_restore(const BareImage& image);  // returns the fd, out of repair mode

}  // namespace seamless::bench
