// The syscalls of the handoff writer whose failures must surface (ENOSPC, EIO from
// write and from fsync), behind a seam so tests can make them fail on demand.
// Private to repair/ and its tests.
#pragma once

#include <sys/uio.h>
#include <unistd.h>

namespace seamless::repair {

class HandoffIo {
 public:
  virtual ~HandoffIo() = default;
  virtual ssize_t writev(int fd, const iovec* iov, int count) { return ::writev(fd, iov, count); }
  virtual int fsync(int fd) { return ::fsync(fd); }
};

}  // namespace seamless::repair
