// Creating and removing a patch region inside the target, with system calls
// run on one of its threads (see RemoteSyscalls).
#pragma once
#include <string>

#include "loader/target_session.h"
#include "patch/patch.h"

namespace graft {

struct RegionLayout {
  uint64_t address = 0;
  uint64_t size = 0;        // record pages + [transition area + gates] + image
  uint64_t image_offset = 0;
  ImageLayout image;
  // Per-thread models only: the transition area (rw-) and the gates (r-x),
  // between the record pages and the image. Offsets from `address`.
  uint64_t transition_offset = 0, transition_size = 0;
  uint64_t gates_offset = 0, gates_size = 0;
};

// Maps a memfd named "graft:<name>" at exactly layout.address: the record
// pages and rodata read-only, the code read+execute, data read+write; never
// writable and executable at once.
// The session must be attached.
void create_region(TargetSession& session, const RegionLayout& layout, const std::string& name);
void remove_region(TargetSession& session, uint64_t address, uint64_t size);

}  // namespace graft
