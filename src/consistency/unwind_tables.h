// Where the unwind information of each mapped object lives in the target:
// the binary-search table of its .eh_frame_hdr, described in the form
// libunwind searches remotely (UNW_INFO_FORMAT_REMOTE_TABLE). Everything is
// read from the target's memory (ELF and program headers included), once
// per object, and validated. An object without .eh_frame_hdr (a static
// executable) is indexed by graft from its .eh_frame, found through the
// section headers of the mapped file and read from memory; that index lives
// in graft, at an address no user mapping can have, and is served to
// libunwind by read_synthetic().
#pragma once
#include <libunwind.h>
#include <sys/types.h>

#include <map>
#include <string>
#include <optional>
#include <span>
#include <vector>

#include "common/address_range.h"
#include "process/maps.h"
#include "process/memory.h"

namespace graft {

// Pure parts, fuzzed by fuzz/unwind_table_fuzzer.cc: where the object whose
// first page (ELF and program headers, as read from the target) is mapped at
// `base` keeps its .eh_frame_hdr; and the libunwind description of the
// 12-byte .eh_frame_hdr header `h` found at `hdr`, if it has the one layout
// graft accepts.
std::optional<uint64_t> eh_frame_hdr_address(std::span<const uint8_t> first_page, uint64_t base);
std::optional<unw_dyn_info_t> remote_table(std::span<const uint8_t, 12> h, uint64_t hdr,
                                           uint64_t exec_start, uint64_t exec_end);

class UnwindTables {
 public:
  UnwindTables(pid_t pid, const ProcessMemory& memory);
  // nullptr if no unwind table covers `ip`.
  unw_dyn_info_t* find(uint64_t ip);
  // The file whose code is at `ip` ("" for anonymous code).
  std::string file_at(uint64_t ip) const;
  // The word at `addr` if it lies in an index graft built (see above).
  bool read_synthetic(uint64_t addr, uint64_t* val) const;
  // The mappings of files that are neither writable nor executable (where
  // the unwind tables lie): the target's threads do not change them, and
  // graft writes only code, stacks and its own regions. Sorted.
  const std::vector<AddressRange>& read_only_files() const { return read_only_files_; }

 private:
  struct Object {
    uint64_t exec_start = 0, exec_end = 0;
    uint64_t base = 0;  // mapping of the ELF header
    bool loaded = false, valid = false;
    bool graft = false;  // code of a graft patch
    uint64_t hdr = 0;    // its unwind index
    std::string path;    // as /proc/PID/maps names it
    std::string file;    // /proc/PID/map_files/...: the mapped file itself
    std::vector<uint8_t> index;  // built from .eh_frame, at `index_addr`
    uint64_t index_addr = 0;
    unw_dyn_info_t info{};
  };
  void load(Object& o, size_t slot);
  void use_eh_frame_hdr(Object& o, uint64_t hdr);
  void use_eh_frame(Object& o, size_t slot);

  const ProcessMemory& memory_;
  std::vector<Object> objects_;
  std::vector<AddressRange> read_only_files_;
};

}  // namespace graft
