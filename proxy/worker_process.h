// The worker process (`seamless worker`, spawned by the keeper, never by hand): reads
// the config the keeper validated, takes the pairs the keeper hands it (reload) and
// restores those of a handoff file (upgrade, crash), serves, and reports everything
// on the control channel (keeper_link.h, control_channel.h).
//
// Start:   the loop runs at once; each pair of a kAdoptBatch is served from when it
//          arrives. kAdoptEnd -> restore the handoff file it names, if any, handing each batch to
//          the keeper in repair mode (kRestored, kSync/kAck) -> kReady.
// Run:     kQuiesce -> every pair's latest record (kPairRecord), kQuiesced, exit 0.
//          kDrain   -> drain (DESIGN §1 SIGTERM), exit 0.
//          EOF      -> the keeper died: close the listener copies, drain, exit 0.
#pragma once

#include <string>
#include <vector>

namespace seamless::proxy {

struct WorkerProcessArgs {
  int control_fd = -1;
  int config_fd = -1;        // the config's text, as the keeper read and checked it
  std::string config_name;   // its file name, for messages
};

int run_worker_process(const WorkerProcessArgs& args);

}  // namespace seamless::proxy
