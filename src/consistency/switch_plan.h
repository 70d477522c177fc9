// What a consistency model carries out: the bytes to write at each patch
// site, and the code no thread may be in when they are written.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "common/hash.h"
#include "consistency/stack_check.h"
#include "process/remote_address.h"

namespace graft {

struct SiteWrite {
  std::string function;
  RemoteAddress site;
  Bytes expected;  // what must be there now (else something else changed it); empty: anything
  Bytes bytes;     // what to write
  bool activation = false;  // the one-byte flag of the switch gates, not an entry
};

struct SwitchPlan {
  std::vector<SiteWrite> writes;
  std::vector<BusyRange> busy;
  // kStopStubSize bytes of code graft owns in the target, where the stop
  // model may put its return trap (arch/x86_64/stop_stub.h); 0 if none:
  // threads then run alone in time slices.
  uint64_t stop_stub = 0;
  // Why it has no unwind information registered with the process's libgcc
  // ("" if it has): see consistency/return_traps.h.
  std::string stop_stub_unwind = "not registered";
};

struct SwitchResult {
  double pause_ms = 0;      // the successful global stop
  double max_pause_ms = 0;  // the longest global stop, retries included
  int retries = 0;
  int threads_run_out = 0;  // threads run alone until out of replaced code
};

}  // namespace graft
