// Chooses where a patch region goes in the target: in a free gap close
// enough to the target object that rel32 jumps and references reach it.
#pragma once
#include <cstdint>
#include <vector>

#include "loader/loaded_objects.h"
#include "process/maps.h"

namespace graft {

// Throws if no gap within reach can hold `size` bytes.
uint64_t choose_region_address(const std::vector<Mapping>& maps, const LoadedObject& target,
                               uint64_t size, pid_t pid);

}  // namespace graft
