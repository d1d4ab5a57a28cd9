// Where a HandoffReader gets its bytes: a file descriptor (buffered) or memory (the
// fuzzer). Private to repair/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace seamless::repair {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `size` bytes into `dst`; 0 only at the end of the input.
  virtual Result<size_t> read_some(void* dst, size_t size) = 0;
  // Bytes the input can still supply. The reader sizes buffers by this rather than
  // by lengths the file claims, so a lying length cannot make it allocate.
  virtual uint64_t remaining() const = 0;
};

std::unique_ptr<ByteSource> make_memory_source(std::string_view bytes);
// `fd` must be a regular file positioned at its start.
Result<std::unique_ptr<ByteSource>> make_fd_source(UniqueFd fd);

}  // namespace seamless::repair
