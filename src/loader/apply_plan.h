// The plan of an apply, function by function: what runs at each replaced
// function's entry now, what graft will write there, and the checks that
// must hold first. Built from the patch and a snapshot of the target (its
// memory through a MemoryReader, its patch records), with no side effect:
// unit tests plan against a fake process (tests/unit/apply_plan_test.cc).
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/address_range.h"
#include "common/hash.h"
#include "loader/patch_record.h"
#include "patch/patch.h"
#include "process/memory_reader.h"

namespace graft {

// One function the apply redirects: replaced by the patch, or (cumulative
// patches) put back to its original code.
struct PlannedFunction {
  std::string name;  // demangled name and file, for messages
  uint64_t address = 0, size = 0;  // runtime address of the function
  uint64_t site = 0;               // where the jump goes (after endbr64)
  std::vector<AddressRange> cold;  // its cold parts, runtime addresses
  Bytes entry;     // the kRedirectSize bytes at the site now
  Bytes original;  // the same bytes before any graft patch
  Bytes whole;     // the whole function, with `original' at the site
  Bytes current;   // the bytes from the site to the end, as they run now
  Bytes original_code;  // the same with `original' at the site
  // The applied patch whose jump is at the site now (stacking), or null.
  const PatchRecord* stacked_on = nullptr;
  const FunctionRecord* below = nullptr;
  uint64_t slot = 0;  // offset of its slot in the gate pages (per-thread models)
};

// Plans the replacement of `f' in the process whose target object is
// loaded at `bias'. Throws graft::Error, naming the process and the
// function, if the function is too short for the jump, if its entry no
// longer holds the jump of the patch below it, or if its bytes (with the
// original entry) differ from the ones the patch was built for.
PlannedFunction plan_function(const FunctionReplacement& f, uint64_t bias, const MemoryReader& memory,
                              const std::vector<PatchRecord>& records, pid_t pid,
                              const std::string& target_path);

// Plans putting `f' (a function of a patch a cumulative patch replaces) back
// to `original' (the bytes at its site before any graft patch).
PlannedFunction plan_restored_function(const FunctionRecord& f, const Bytes& original,
                                       const MemoryReader& memory);

}  // namespace graft
