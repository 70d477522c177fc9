#include "consistency/stack_check.h"

#include <algorithm>

#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "common/error.h"
#include "consistency/unwind_tables.h"

extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t, unw_word_t, unw_dyn_info_t*,
                                                  unw_proc_info_t*, int, void*);

namespace graft {

namespace {

// libunwind passes its callbacks no context of ours, so the walk in
// progress is published here, per thread (graft patches several processes
// at once, each on a thread of its own).
struct WalkContext {
  const ProcessMemory* memory;
  const arch::Registers* regs;
  UnwindTables* tables;
  std::unordered_map<uint64_t, Bytes>* pages;
  // Set when libunwind asked for a pc no CFI covers: it then falls back to
  // guessing (frame pointers), which graft does not accept.
  bool guessed = false;
  uint64_t guessed_pc = 0;
};
thread_local WalkContext* current = nullptr;

// Publishes a walk's context for as long as it lasts.
struct PublishedWalk {
  explicit PublishedWalk(WalkContext* ctx) { current = ctx; }
  ~PublishedWalk() { current = nullptr; }
  PublishedWalk(const PublishedWalk&) = delete;
  PublishedWalk& operator=(const PublishedWalk&) = delete;
};

// Reads through a page cache: a walk reads the same unwind tables and stack
// words many times, and each uncached read is a system call.
bool read_word(uint64_t addr, unw_word_t* val) {
  uint64_t page = addr & ~(kPageSize - 1);
  if (addr - page > kPageSize - sizeof *val) return current->memory->try_read({addr}, val, sizeof *val);
  auto it = current->pages->find(page);
  if (it == current->pages->end()) {
    Bytes b(kPageSize);
    if (!current->memory->try_read({page}, b.data(), kPageSize)) return false;
    it = current->pages->emplace(page, std::move(b)).first;
  }
  std::memcpy(val, it->second.data() + (addr - page), sizeof *val);
  return true;
}

int access_mem(unw_addr_space_t, unw_word_t addr, unw_word_t* val, int write, void*) {
  if (write || !current) return -UNW_EINVAL;
  uint64_t v;
  if (current->tables->read_synthetic(addr, &v)) {
    *val = v;
    return 0;
  }
  return read_word(addr, val) ? 0 : -UNW_EINVAL;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* val, int write, void*) {
  if (write || !current) return -UNW_EBADREG;
  uint64_t v;
  if (!arch::unwind_register(*current->regs, reg, &v)) return -UNW_EBADREG;
  *val = v;
  return 0;
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }

int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi, int need, void* arg) {
  if (!current) return -UNW_ENOINFO;
  unw_dyn_info_t* di = current->tables->find(ip);
  int rc = di ? _Ux86_64_dwarf_search_unwind_table(as, ip, di, pi, need, arg) : -UNW_ENOINFO;
  if (rc < 0 && !current->guessed) {
    current->guessed = true;
    current->guessed_pc = ip;
  }
  return rc;
}

void put_unwind_info(unw_addr_space_t, unw_proc_info_t* pi, void*) {
  std::free(pi->unwind_info);
  pi->unwind_info = nullptr;
}

int get_dyn_info_list_addr(unw_addr_space_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }

unw_accessors_t accessors = {find_proc_info, put_unwind_info, get_dyn_info_list_addr, access_mem,
                             access_reg,     access_fpreg,    resume,                 nullptr};

constexpr int kMaxFrames = 512;

}  // namespace

StackCheck::StackCheck(pid_t pid, const ProcessMemory& memory, std::vector<BusyRange> busy)
    : pid_(pid), memory_(memory), busy_(std::move(busy)) {
  space_ = unw_create_addr_space(&accessors, 0);
  if (!space_) fail("libunwind: cannot create an address space");
  unw_set_caching_policy(space_, UNW_CACHE_GLOBAL);
  tables_ = std::make_unique<UnwindTables>(pid, memory);
}

StackCheck::~StackCheck() {
  if (space_) unw_destroy_addr_space(space_);
}

std::optional<std::string> StackCheck::busy_at(uint64_t pc) const {
  for (const auto& b : busy_)
    if (b.range.contains(pc)) return b.what;
  return std::nullopt;
}

bool StackCheck::read_only_file_page(uint64_t page) const {
  const auto& ranges = tables_->read_only_files();
  auto it = std::upper_bound(ranges.begin(), ranges.end(), page,
                             [](uint64_t a, const AddressRange& r) { return a < r.start; });
  return it != ranges.begin() && std::prev(it)->contains(page);
}

void StackCheck::forget_memory() {
  for (auto it = pages_.begin(); it != pages_.end();)
    it = read_only_file_page(it->first) ? std::next(it) : pages_.erase(it);
  tables_may_be_stale_ = true;
}

std::optional<std::string> StackCheck::check(pid_t tid, const arch::Registers& regs) {
  bool unknown_pc = false;
  auto result = walk(tid, regs, unknown_pc);
  if (!unknown_pc || !tables_may_be_stale_) return result;
  tables_ = std::make_unique<UnwindTables>(pid_, memory_);
  pages_.clear();  // what is mapped changed
  unw_flush_cache(space_, 0, 0);
  tables_may_be_stale_ = false;
  return walk(tid, regs, unknown_pc);
}

std::optional<std::string> StackCheck::walk(pid_t tid, const arch::Registers& regs, bool& unknown_pc) {
  unknown_pc = false;
  WalkContext ctx{&memory_, &regs, tables_.get(), &pages_};
  PublishedWalk published(&ctx);

  unw_cursor_t cursor;
  if (int rc = unw_init_remote(&cursor, space_, nullptr); rc < 0)
    return fmt::format("thread {}: cannot start unwinding its stack (libunwind error {})", tid, rc);
  for (int depth = 0; depth < kMaxFrames; ++depth) {
    unw_word_t ip = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    // A return address points after the call; the call itself is at ip-1.
    // But the frame a signal interrupted resumes at ip itself, which may be
    // the first instruction of a busy function (ip-1 then lies before it):
    // both count. A return to a busy function's first byte would run it too.
    uint64_t pc = depth == 0 ? ip : ip - 1;
    bool at_entry = depth == 0 && std::find(entries_.begin(), entries_.end(), ip) != entries_.end();
    auto what = at_entry ? std::nullopt : busy_at(pc);
    if (!what && depth > 0 && (what = busy_at(ip))) pc = ip;
    if (what)
      return fmt::format("thread {} is inside {} (frame #{}, pc {:#x})", tid, *what, depth, pc);
    unw_proc_info_t info;
    int step = unw_get_proc_info(&cursor, &info) < 0 ? -UNW_ENOINFO : unw_step(&cursor);
    if (ctx.guessed) {
      unknown_pc = true;
      std::string file = tables_->file_at(ctx.guessed_pc);
      return fmt::format("thread {}: no unwind information for pc {:#x} ({}, frame #{}); its stack "
                         "cannot be checked reliably",
                         tid, ctx.guessed_pc, file.empty() ? "anonymous code" : "in " + file, depth);
    }
    if (step == 0) return std::nullopt;  // reached the outermost frame
    if (step < 0)
      return fmt::format("thread {}: stack walk failed at pc {:#x} (frame #{}, libunwind error {})",
                         tid, pc, depth, step);
  }
  return fmt::format("thread {}: stack deeper than {} frames", tid, kMaxFrames);
}

std::optional<StackCheck::ReturnSlot> StackCheck::outermost_busy_return(const arch::Registers& regs) {
  WalkContext ctx{&memory_, &regs, tables_.get(), &pages_};
  PublishedWalk published(&ctx);
  unw_cursor_t cursor;
  if (unw_init_remote(&cursor, space_, nullptr) < 0) return std::nullopt;
  std::optional<ReturnSlot> out;
  bool last_busy = false;  // the frame just stepped from was busy
  for (int depth = 0; depth < kMaxFrames; ++depth) {
    unw_word_t ip = 0, sp = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    unw_get_reg(&cursor, UNW_REG_SP, &sp);
    if (last_busy) {
      // The caller of the busy frame just left: its sp is that frame's CFA,
      // and the return address must be the word below it (a signal frame or
      // unusual CFI keeps it elsewhere: not rewritten).
      uint64_t slot = sp - 8, word = 0;
      if (!memory_.try_read({slot}, &word, sizeof word) || word != ip) return std::nullopt;
      out = ReturnSlot{slot, ip, depth - 1};
    }
    uint64_t pc = depth == 0 ? ip : ip - 1;
    bool at_entry = depth == 0 && std::find(entries_.begin(), entries_.end(), ip) != entries_.end();
    last_busy = !at_entry && (busy_at(pc) || (depth > 0 && busy_at(ip)));
    unw_proc_info_t info;
    int step = unw_get_proc_info(&cursor, &info) < 0 ? -UNW_ENOINFO : unw_step(&cursor);
    if (ctx.guessed || step < 0) return std::nullopt;
    if (step == 0) return last_busy ? std::nullopt : out;  // the outermost frame returns nowhere
  }
  return std::nullopt;
}

}  // namespace graft
