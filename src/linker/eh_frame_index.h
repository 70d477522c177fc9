// The unwind index of a patch image, so that graft's stack check can walk
// through frames of patch code like any other code.
//
// The patch's .eh_frame is kept in the image, and a binary-search table in
// the layout of .eh_frame_hdr (version 1, eh_frame_ptr pcrel|sdata4,
// fde_count udata4, table datarel|sdata4) is placed at the very start of the
// rodata part, where the stack check looks for it. Every field of the table
// is relative to the table itself, so it is computed at build time.
#pragma once
#include <cstdint>
#include <vector>

#include "linker/relocatable_object.h"

namespace graft {

// One FDE of the object's .eh_frame: its offset in the section and the
// relocation that gives its initial location.
struct FdeRef {
  uint64_t fde_offset;
  uint32_t symbol;  // in the object's symbol table
  int64_t addend;   // pc_begin = symbol + addend - field address
  uint64_t field_offset;
};

std::vector<FdeRef> read_fdes(const RelocatableObject& object, const ElfSection& eh_frame);

constexpr uint64_t eh_frame_hdr_size(size_t fdes) { return 12 + 8 * fdes; }

// `functions[i]` is the image offset of FDE i's function. Writes the table
// at image offset `hdr`; the section lies at image offset `eh_frame`.
void write_eh_frame_hdr(uint8_t* image, uint64_t hdr, uint64_t eh_frame,
                        const std::vector<FdeRef>& fdes, const std::vector<uint64_t>& functions);

}  // namespace graft
