// Fault injection for the integration tests (tests/integration/proxy): each hook is off
// unless its SEAMLESS_TEST_* environment variable is set, and then makes one step of a
// handoff fail for real, so that a test can check that the failure leaves every stream
// on the old code. The one-shot hooks take a file that the test creates to arm them.
#pragma once

#include <functional>
#include <string>

#include "proxy/logging.h"

namespace seamless::proxy {

// SEAMLESS_TEST_FAIL_EXEC (any value): execveat is not called and fails with ENOEXEC.
bool exec_fails_for_test();

// SEAMLESS_TEST_NO_KEPT_SOCKETS=<file>: while <file> exists, an upgrade does not pass
// its dumped sockets through the exec (kept_sockets.h), so the new image restores
// every pair from the handoff file, as for a binary that does not take them.
bool kept_sockets_off_for_test();

// SEAMLESS_TEST_LOSE_KEPT_SOCKETS=<file>: if <file> exists (it is removed), an upgrade
// that passes its dumped sockets through the exec lets the client sockets of its first
// two pairs close in the exec after all, while the memfd still names them: the new
// image must take the other pairs and restore those two from the file.
bool lose_kept_sockets_for_test();

// SEAMLESS_TEST_WORKERS_SILENT (any value): workers never send kStarted, so an
// upgrade's new worker seems not to start and the keeper goes on without it.
bool workers_silent_for_test();

// The environment variable `name` naming a file that exists makes the process die
// here (the file is removed first, so that the next worker gets through).
// SEAMLESS_TEST_CRASH_ONCE: a restoring worker, right after the keeper took a batch.
// SEAMLESS_TEST_CRASH_ON_CLIENT: on a client from the keeper, before anything (its
// connect) is done with it.
// SEAMLESS_TEST_CRASH_ON_ADOPT: a worker, on the first live pair the keeper hands it.
// SEAMLESS_TEST_CRASH_AFTER_EXEC: an upgrade's new keeper, before it takes the kept
// sockets (kept_sockets.h) out of repair mode.
void crash_here_once_for_tests(const char* name);

// SEAMLESS_TEST_FILL_HANDOFF_DIR=<file>: called after the upgrade preflight passed and
// before the handoff file is written. If <file> (which the test puts on handoff.dir's
// filesystem) exists and is empty, it is grown with fallocate until its filesystem has
// only 64 KiB free, so that the write runs into ENOSPC on the real filesystem. The
// test frees the space by removing <file>; a file no longer empty is left alone.
void fill_handoff_dir_hook(const Logger& log);

// SEAMLESS_TEST_CORRUPT_HANDOFF=<file>: if <file> exists, it is removed and the
// returned function flips one byte in the middle of the next committed handoff file,
// before it is read back and verified. An empty function otherwise.
std::function<void(const std::string& path)> corrupt_handoff_file_hook(const Logger& log);

}  // namespace seamless::proxy
