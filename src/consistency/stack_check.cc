#include "consistency/stack_check.h"

#include <libunwind-ptrace.h>

#include "common/error.h"

namespace graft {

namespace {

// libunwind passes its accessors only the opaque UPT handle, so the thread
// being walked is published here. graft is single-threaded.
struct WalkContext {
  const ProcessMemory* memory;
  const arch::Registers* regs;
};
thread_local WalkContext* current = nullptr;

int access_mem(unw_addr_space_t, unw_word_t addr, unw_word_t* val, int write, void*) {
  if (write || !current) return -UNW_EINVAL;
  return current->memory->try_read({addr}, val, sizeof *val) ? 0 : -UNW_EINVAL;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* val, int write, void*) {
  if (write || !current) return -UNW_EBADREG;
  uint64_t v;
  if (!arch::unwind_register(*current->regs, reg, &v)) return -UNW_EBADREG;
  *val = v;
  return 0;
}

unw_accessors_t make_accessors() {
  unw_accessors_t a = _UPT_accessors;
  // Registers come from the snapshot graft already took; memory from one
  // process_vm_readv per word instead of one ptrace call.
  a.access_mem = access_mem;
  a.access_reg = access_reg;
  return a;
}

constexpr int kMaxFrames = 512;

}  // namespace

StackCheck::StackCheck(pid_t pid, const ProcessMemory& memory, std::vector<BusyRange> busy)
    : pid_(pid), memory_(memory), busy_(std::move(busy)) {
  static unw_accessors_t accessors = make_accessors();
  space_ = unw_create_addr_space(&accessors, 0);
  if (!space_) fail("libunwind: cannot create an address space");
  unw_set_caching_policy(space_, UNW_CACHE_GLOBAL);
  // Unwind information is looked up through the process's main thread; it
  // is the same for every thread of the process.
  upt_ = _UPT_create(pid);
  if (!upt_) fail("libunwind: cannot attach to process {}", pid);
}

StackCheck::~StackCheck() {
  if (upt_) _UPT_destroy(upt_);
  if (space_) unw_destroy_addr_space(space_);
}

std::optional<std::string> StackCheck::busy_at(uint64_t pc) const {
  for (const auto& b : busy_)
    if (b.range.contains(pc)) return b.what;
  return std::nullopt;
}

std::optional<std::string> StackCheck::check(pid_t tid, const arch::Registers& regs) {
  WalkContext ctx{&memory_, &regs};
  current = &ctx;
  struct Reset {
    ~Reset() { current = nullptr; }
  } reset;

  unw_cursor_t cursor;
  if (int rc = unw_init_remote(&cursor, space_, upt_); rc < 0)
    return fmt::format("thread {}: cannot start unwinding its stack (libunwind error {})", tid, rc);
  for (int depth = 0; depth < kMaxFrames; ++depth) {
    unw_word_t ip = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    // A return address points after the call; the call itself is at ip-1.
    uint64_t pc = depth == 0 ? ip : ip - 1;
    if (auto what = busy_at(pc))
      return fmt::format("thread {} is inside {} (frame #{}, pc {:#x})", tid, *what, depth, pc);
    unw_proc_info_t info;
    if (unw_get_proc_info(&cursor, &info) < 0)
      return fmt::format("thread {}: no unwind information for pc {:#x} (frame #{}); its stack "
                         "cannot be checked reliably",
                         tid, pc, depth);
    int step = unw_step(&cursor);
    if (step == 0) return std::nullopt;  // reached the outermost frame
    if (step < 0)
      return fmt::format("thread {}: stack walk failed at pc {:#x} (frame #{}, libunwind error {})",
                         tid, pc, depth, step);
  }
  return fmt::format("thread {}: stack deeper than {} frames", tid, kMaxFrames);
}

}  // namespace graft
