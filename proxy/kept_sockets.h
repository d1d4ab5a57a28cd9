// Kept sockets: an upgrade passes its dumped sockets through the exec instead of
// letting the exec close them, so the new image need not rebuild them from the file.
//
// The checkpoint runs as before (lock, dump, write, verify): the file is the copy that
// survives a crash of the new image, whose exit then closes the sockets silently
// (they are still in repair mode) and leaves the flows locked for the restore on
// restart. But a new image that starts has the originals, dumped and untouched: it
// takes them out of repair mode, unlocks their flows and hands them to its worker
// live, as a reload does. Rebuilding 10,000 sockets cost the 5,000-pair upgrade
// ~500 ms and closing them inside the exec ~90 ms (tests/bench/handoff/README.md).
//
// What crosses the exec besides the fds: a memfd (not close-on-exec) named by
// kKeptSocketsEnvVar, holding per pair its kAdopt message (control_channel.h: the
// keeper's record of the pair, which fits the live sockets, not the dumped one) and,
// per fd, its number and the socket's inode number. The reader takes an fd only if
// it is still that socket, so a stale or reused number is never closed or adopted.
// Only a binary that says so in its preflight (`check` prints kKeptSocketsFeature)
// gets them: any other would leave them open and then fail to restore the file's
// pairs onto their 4-tuples.
#pragma once

#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "proxy/control_channel.h"
#include "proxy/held_pairs.h"

namespace seamless::proxy {

inline constexpr const char* kKeptSocketsEnvVar = "SEAMLESS_KEPT_SOCKETS";
// The token `seamless check --reads-handoff-major N` prints on its "upgrade features:"
// line when the binary takes kept sockets in this layout.
inline constexpr std::string_view kKeptSocketsFeature = "kept-sockets/1";

// A new memfd, without close-on-exec, describing every pair of `pairs` and its fds.
Result<UniqueFd> write_kept_sockets(const std::map<uint64_t, HeldPair>& pairs);

struct KeptPairs {
  // kAdopt messages owning their fds, for HeldPairs::apply.
  std::vector<Message> pairs;
  // Pairs with an fd that is no longer its socket: they are restored from the file.
  // Their fds that still were are closed here (silently: in repair mode).
  std::vector<uint64_t> unmatched;
};

// Reads what write_kept_sockets wrote before the exec. The fds it takes become
// close-on-exec. An error (a memfd that does not parse) takes no fd.
Result<KeptPairs> read_kept_sockets(int memfd);

}  // namespace seamless::proxy
