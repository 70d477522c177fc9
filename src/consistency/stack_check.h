// Decides whether a stopped thread may be switched: its program counter and
// every return address on its stack must lie outside the code being
// replaced. Stacks are walked with libunwind from the DWARF CFI of the
// mapped objects; a frame without unwind information, or a walk that fails,
// makes the thread "unreliable", which callers treat like "busy": graft
// never guesses.
#pragma once
#include <libunwind.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "arch/x86_64/registers.h"
#include "common/address_range.h"
#include "common/hash.h"
#include "consistency/unwind_tables.h"
#include "process/memory.h"

namespace graft {

// Code no thread may be executing when the switch happens.
struct BusyRange {
  AddressRange range;
  std::string what;  // "function `handle'"
};

class StackCheck {
 public:
  StackCheck(pid_t pid, const ProcessMemory& memory, std::vector<BusyRange> busy);
  ~StackCheck();
  StackCheck(const StackCheck&) = delete;
  StackCheck& operator=(const StackCheck&) = delete;

  // nullopt if the thread may switch; otherwise why not, for the operator.
  std::optional<std::string> check(pid_t tid, const arch::Registers& regs);
  // A thread whose pc is at one of `entries` (the innermost frame only) has
  // not started that function: its first instruction dispatches it by its
  // universe (per-thread models, where entries lead to gates).
  void allow_at_entries(std::vector<uint64_t> entries) { entries_ = std::move(entries); }
  // Where the return address of the thread's outermost frame in busy code
  // lies: graft may point it at an exit stub (arch/x86_64/return_stub.h).
  // nullopt unless the whole stack unwinds reliably, some frame is busy and
  // that frame's return address is the word at its CFA - 8.
  struct ReturnSlot {
    uint64_t slot = 0;      // stack address of the return address
    uint64_t original = 0;  // the return address (into code that is not busy)
    int depth = 0;          // of the busy frame
  };
  std::optional<ReturnSlot> outermost_busy_return(const arch::Registers& regs);
  // Whether `pc` lies in code no thread may be in at the switch.
  bool in_busy_code(uint64_t pc) const { return busy_at(pc).has_value(); }
  // Call whenever threads have run since the last check. They may also
  // have mapped code since (the dynamic loader of a process that has just
  // started, dlopen): a pc no table covers then reloads the tables. Pages
  // of read-only file mappings (UnwindTables::read_only_files(): the
  // unwind tables) are kept, as libunwind keeps what it parsed from them:
  // a per-thread transition checks its threads one by one, and would read
  // them again for each.
  void forget_memory();

 private:
  std::optional<std::string> busy_at(uint64_t pc) const;
  // One walk; `unknown_pc' is set when it met a pc no unwind table covers.
  std::optional<std::string> walk(pid_t tid, const arch::Registers& regs, bool& unknown_pc);

  pid_t pid_;
  const ProcessMemory& memory_;
  std::vector<BusyRange> busy_;
  std::vector<uint64_t> entries_;
  unw_addr_space_t space_ = nullptr;
  std::unique_ptr<UnwindTables> tables_;
  bool tables_may_be_stale_ = false;
  bool read_only_file_page(uint64_t page) const;
  // Target memory read during one global stop; forget_memory() drops it
  // but for the read-only file pages.
  std::unordered_map<uint64_t, Bytes> pages_;
};

}  // namespace graft
