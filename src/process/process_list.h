// Every process on the system, from /proc.
#pragma once
#include <sys/types.h>

#include <vector>

namespace graft {

// Every process but graft itself, by pid.
std::vector<pid_t> all_processes();

}  // namespace graft
