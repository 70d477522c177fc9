// Whether a new process's target is mapped for good. The dynamic loader maps
// a library in two steps: one mapping of the whole file with the first
// segment's protection, then each further segment over it (MAP_FIXED) from
// the file. Code written into the first mapping is lost when the code
// segment is mapped over it; so a patch is applied only once each function
// it replaces lies in an executable mapping of the target.
#pragma once
#include <sys/types.h>

#include <string>

#include "loader/loaded_objects.h"
#include "patch/patch.h"

namespace graft::ops {

// "" when ready; otherwise what is missing, for the log.
std::string target_not_ready(pid_t pid, const Patch& patch, BuildIdCache& cache);

}  // namespace graft::ops
