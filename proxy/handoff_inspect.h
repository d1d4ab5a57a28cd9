// `seamless handoff inspect FILE [--json] [--payload]`: describes a handoff file
// (repair/handoff_file.h, DESIGN.md §5) for a human, or as one JSON document.
//
// The file is untrusted: it is read only through repair::HandoffReader, which checks
// every length and checksum. It is read twice through one open file description:
// first to verify it to the end, so that a truncated or corrupt file is refused with
// one error before anything is printed; then to render it, one record in memory at
// a time, however large its queues. Queue contents (user payload) are left out
// unless `payload` is set.
#pragma once

#include <ostream>
#include <string>

#include "base/result.h"

namespace seamless::proxy {

struct InspectOptions {
  bool json = false;     // one JSON document instead of text
  bool payload = false;  // include queue contents (hex dump in text, base64 in JSON)
};

// Writes the description of the handoff file at `path` to `out`. An error names the
// file and the problem ("handoff file /x/handoff.bin: truncated at offset 512 ...")
// and means nothing was written, unless the file changed between the two passes.
Status inspect_handoff_file(const std::string& path, const InspectOptions& options,
                            std::ostream& out);

}  // namespace seamless::proxy
