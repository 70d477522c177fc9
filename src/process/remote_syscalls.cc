#include "process/remote_syscalls.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "arch/x86_64/sigreturn_frame.h"
#include "common/error.h"
#include "common/file.h"

namespace graft {

namespace {

constexpr size_t kScratchSize = 512;

// The first occurrence of `bytes` in code that stays put: the vDSO first
// (always there), then the executable mappings of files. Not graft's own
// regions (a call may be the munmap of that very region, and a thread left
// to return into it, if graft dies, would fault), nor anonymous or memfd
// code (a JIT may rewrite or unmap it).
std::optional<RemoteAddress> find_code(const ProcessMemory& memory, const std::vector<Mapping>& maps,
                                       std::span<const uint8_t> bytes) {
  std::vector<const Mapping*> order;
  for (const auto& m : maps)
    if (m.exec && m.path == "[vdso]") order.push_back(&m);
  for (const auto& m : maps)
    if (m.exec && m.read && m.path.rfind('/', 0) == 0 && m.path.rfind("/memfd:", 0) != 0)
      order.push_back(&m);
  for (const Mapping* m : order) {
    constexpr uint64_t kChunk = 64 * 1024;
    for (uint64_t at = m->start; at < m->end; at += kChunk - bytes.size()) {
      uint64_t n = std::min(kChunk, m->end - at);
      Bytes b(n);
      if (!memory.try_read({at}, b.data(), n)) break;
      auto it = std::search(b.begin(), b.end(), bytes.begin(), bytes.end());
      if (it != b.end()) return RemoteAddress{at + static_cast<uint64_t>(it - b.begin())};
      if (n < kChunk) break;
    }
  }
  return std::nullopt;
}

// Code find_code may use: the vDSO, or a file's (not memfd) executable mapping.
bool usable_code(const Mapping& m) {
  return m.exec && (m.path == "[vdso]" || (m.read && m.path.rfind('/', 0) == 0 && m.path.rfind("/memfd:", 0) != 0));
}

// Where some process held the bytes: a file (device, inode) at an offset,
// or the vDSO (the kernel's, the same in every process) at an offset.
struct Place {
  bool vdso = false;
  std::string device;
  uint64_t inode = 0;
  uint64_t offset = 0;
};

std::optional<Place> place_of(const std::vector<Mapping>& maps, uint64_t at, size_t size) {
  for (const auto& m : maps)
    if (usable_code(m) && m.start <= at && at + size <= m.end)
      return m.path == "[vdso]" ? Place{true, "", 0, at - m.start} : Place{false, m.device, m.inode, m.offset + at - m.start};
  return std::nullopt;
}

std::optional<uint64_t> address_of(const std::vector<Mapping>& maps, const Place& p, size_t size) {
  for (const auto& m : maps) {
    if (!usable_code(m) || (m.path == "[vdso]") != p.vdso || (!p.vdso && (m.device != p.device || m.inode != p.inode)))
      continue;
    uint64_t base = p.vdso ? 0 : m.offset;
    if (p.offset >= base && p.offset - base + size <= m.end - m.start) return m.start + (p.offset - base);
  }
  return std::nullopt;
}

bool holds(const ProcessMemory& memory, uint64_t at, std::span<const uint8_t> bytes) {
  Bytes now(bytes.size());
  return memory.try_read({at}, now.data(), now.size()) && std::equal(now.begin(), now.end(), bytes.begin());
}

// find_code, remembered per process, and where it was found, for the other
// processes: the search reads up to megabytes of the target (the gadgets
// are often only in libc), a transition runs a system call in it for every
// step, and with --all every process maps the same libc and vDSO. A
// remembered address or place is used only if it still holds the bytes, in
// code a file or the vDSO maps (the same rules as the search).
std::optional<RemoteAddress> find_code_cached(const ProcessMemory& memory, const std::vector<Mapping>& maps,
                                              std::span<const uint8_t> bytes) {
  // Shared by the threads that patch processes at once (one process each).
  static std::mutex mutex;
  static std::map<std::pair<pid_t, Bytes>, uint64_t> found;
  static std::map<Bytes, Place> places;
  Bytes wanted(bytes.begin(), bytes.end());
  auto key = std::make_pair(memory.pid(), wanted);
  std::optional<uint64_t> remembered;
  std::optional<Place> place;
  {
    std::lock_guard lock(mutex);
    if (auto it = found.find(key); it != found.end()) remembered = it->second;
    if (auto it = places.find(wanted); it != places.end()) place = it->second;
  }
  if (!remembered && place) remembered = address_of(maps, *place, bytes.size());
  std::optional<RemoteAddress> at;
  if (remembered && place_of(maps, *remembered, bytes.size()) && holds(memory, *remembered, bytes))
    at = RemoteAddress{*remembered};
  else
    at = find_code(memory, maps, bytes);
  std::lock_guard lock(mutex);
  if (!at) {
    found.erase(key);
    return at;
  }
  found[key] = at->value;
  if (auto p = place_of(maps, at->value, bytes.size())) places[wanted] = *p;
  return at;
}

// User shadow stacks (CET) would fault on the gadget's `ret`.
bool has_shadow_stack(pid_t pid, pid_t tid) {
  try {
    std::string status = read_text_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
    auto at = status.find("x86_Thread_features:");
    if (at == std::string::npos) return false;
    auto end = status.find('\n', at);
    return status.substr(at, end - at).find("shstk") != std::string::npos;
  } catch (const Error&) {
    return true;  // unknown: do not assume the gadgets work
  }
}

}  // namespace

RemoteSyscalls::RemoteSyscalls(Tracer& tracer, const ProcessMemory& memory,
                               const std::vector<Mapping>& maps)
    : tracer_(tracer), memory_(memory) {
  tid_ = choose_thread();
  resume_ = arch::with_restart_applied(tracer_.registers(tid_));
  uint64_t below = arch::sp(resume_) - arch::kRedZone;
  scratch_ = {(below - kScratchSize) & ~uint64_t(15)};
  prepare_frame(maps);
  if (!kill_safe()) {
    auto insn = find_code_cached(memory, maps, arch::kSyscallInstruction);
    if (!insn) fail("process {}: found no system-call instruction in its code", tracer.pid());
    syscall_insn_ = *insn;
  }
}

// A thread stopped outside any system call is the best choice: borrowing
// it touches no call in progress. Next, one whose call simply restarts.
pid_t RemoteSyscalls::choose_thread() {
  pid_t fallback = 0, restartable = 0;
  for (pid_t tid : tracer_.threads()) {
    if (!tracer_.is_usable_stopped(tid)) continue;
    arch::Registers r = tracer_.registers(tid);
    if (arch::in_user_mode(r)) return tid;
    if (!restartable && !arch::restart_needs_block(r)) restartable = tid;
    if (!fallback) fallback = tid;
  }
  if (restartable) return restartable;
  if (fallback) return fallback;
  return tracer_.stopped_thread();
}

void RemoteSyscalls::prepare_frame(const std::vector<Mapping>& maps) {
  auto syscall_ret = find_code_cached(memory_, maps, arch::kSyscallReturnGadget);
  auto restorer = find_code_cached(memory_, maps, arch::kRestoreRtGadget);
  if (!syscall_ret || !restorer || has_shadow_stack(tracer_.pid(), tid_)) return;
  Bytes xstate;
  uint64_t mask = 0;
  try {
    xstate = tracer_.extended_state(tid_);
    mask = tracer_.signal_mask(tid_);
  } catch (const Error&) {
    return;
  }
  auto frame = arch::build_sigreturn_frame(resume_, mask, xstate, scratch_.value, restorer->value);
  if (!frame) return;
  save_stack({frame->address}, frame->bytes.size());
  memory_.write({frame->address}, frame->bytes);
  frame_at_ = {frame->address};
  syscall_insn_ = *syscall_ret;
}

void RemoteSyscalls::save_stack(RemoteAddress at, size_t size) {
  Bytes b(size);
  if (!memory_.try_read(at, b.data(), size))
    fail("process {}: the stack of thread {} has no room below {:#x}", tracer_.pid(), tid_,
         at.value + size);
  saved_stack_.emplace_back(at, std::move(b));
}

RemoteSyscalls::~RemoteSyscalls() {
  for (auto it = saved_stack_.rbegin(); it != saved_stack_.rend(); ++it) {
    try {
      memory_.write(it->first, it->second);
    } catch (...) {
    }
  }
}

long RemoteSyscalls::call(long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                          uint64_t a4, uint64_t a5) {
  arch::Registers regs = resume_;
  arch::prepare_syscall(regs, syscall_insn_.value, nr, {a0, a1, a2, a3, a4, a5});
  if (kill_safe()) regs.rsp = frame_at_.value;  // `ret` pops the restorer
  long result = arch::syscall_result(tracer_.run_syscall(tid_, regs));
  tracer_.set_registers(tid_, resume_);
  return result;
}

RemoteAddress RemoteSyscalls::scratch_string(const std::string& s) {
  Bytes b(s.begin(), s.end());
  b.push_back(0);
  return scratch(b);
}

RemoteAddress RemoteSyscalls::scratch(const Bytes& bytes) {
  if (bytes.size() > kScratchSize) fail("remote scratch data too long");
  if (std::none_of(saved_stack_.begin(), saved_stack_.end(),
                   [&](const auto& p) { return p.first.value == scratch_.value; }))
    save_stack(scratch_, kScratchSize);
  memory_.write(scratch_, bytes);
  return scratch_;
}

}  // namespace graft
