// graft_quiescent()'s state in a process that maps libgraft-rt
// (runtime/quiescent.c): where the transition area is published, the flag
// that arms it, and the count of threads inside the area.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "loader/loaded_objects.h"
#include "loader/target_session.h"
#include "process/maps.h"
#include "process/memory.h"
#include "process/tracer.h"

namespace graft {

struct QuiescentRuntime {
  uint64_t area = 0, armed = 0;  // 0: the process maps no libgraft-rt
  uint64_t users = 0;            // 0: a libgraft-rt without the counter
};

// Found by symbol, as the patch's target object sees them.
QuiescentRuntime find_quiescent_runtime(TargetSession& session, const LoadedObject& target);
// The same, for the object with this build-id.
QuiescentRuntime find_quiescent_runtime(TargetSession& session, const std::string& build_id);

// Before the region of an abandoned transition (its area at `area') goes:
// if graft_quiescent() is still armed for that area, disarms it and waits,
// with the threads running, until none is inside it. Throws if one still is
// after `timeout_s'.
void disarm_abandoned(Tracer& tracer, const QuiescentRuntime& rt, const ProcessMemory& memory, uint64_t area,
                      double timeout_s);

}  // namespace graft
