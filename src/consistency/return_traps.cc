#include "consistency/return_traps.h"

#include <cstdlib>
#include <fstream>

#include "common/error.h"
#include "elf/elf_file.h"

namespace graft {

bool return_stubs_disabled() {
  const char* knob = std::getenv("GRAFT_RETURN_STUBS");
  return knob && std::string(knob) == "0";
}

bool stub_unwind_info_disabled() {
  const char* knob = std::getenv("GRAFT_STUB_UNWIND_INFO");
  return knob && std::string(knob) == "0";
}

bool put_back_return_address(const ProcessMemory& memory, const arch::Registers& regs, uint64_t stub,
                             uint64_t slot, uint64_t original) {
  uint64_t word = 0;
  if (slot < arch::sp(regs) || !memory.try_read({slot}, &word, sizeof word) || word != stub) return false;
  memory.write_value({slot}, original);
  return true;
}

namespace {

// A static executable carries its unwinder inside (libgcc_eh, or LLVM's
// libunwind, whose functions start with __unw_): no library shows in the
// maps then.
UnwinderUse static_unwinder(pid_t pid) {
  try {
    ElfFile exe(fmt::format("/proc/{}/exe", pid));
    bool raise = false, llvm = false;
    for (const auto& sym : exe.symbols()) {
      if (!sym.defined()) continue;
      if (sym.name == "_Unwind_RaiseException") raise = true;
      if (sym.name.rfind("__unw_", 0) == 0) llvm = true;
    }
    if (llvm) return {Unwinder::Llvm, "the executable's own LLVM libunwind"};
    if (raise) return {Unwinder::Libgcc, "the executable's own unwinder (_Unwind_RaiseException)"};
    return {};
  } catch (const Error&) {
    return {Unwinder::Llvm, "an executable graft cannot read"};
  }
}

}  // namespace

UnwinderUse ReturnTrapPolicy::unwinder() const {
  UnwinderUse gcc;
  std::ifstream maps(fmt::format("/proc/{}/maps", pid_));
  for (std::string line; std::getline(maps, line);) {
    auto slash = line.rfind('/');
    if (slash == std::string::npos) continue;
    std::string file = line.substr(slash + 1);
    // libunwind: LLVM's (libunwind.so.1), or the nongnu one (.so.8),
    // neither of which reads libgcc's registrations.
    for (const char* lib : {"libc++", "libunwind"})
      if (file.rfind(lib, 0) == 0) return {Unwinder::Llvm, file};
    for (const char* lib : {"libstdc++", "libgcc_s"})
      if (file.rfind(lib, 0) == 0 && gcc.kind == Unwinder::None) gcc = {Unwinder::Libgcc, file};
  }
  if (gcc.kind != Unwinder::None) return gcc;
  if (!static_) static_ = static_unwinder(pid_);
  return *static_;
}

std::string ReturnTrapPolicy::refusal(pid_t tid) const {
  UnwinderUse u = unwinder();
  if (u.kind == Unwinder::Llvm)
    return fmt::format("the process unwinds with {}, which would find no unwind information for the stub",
                       u.where);
  if (u.kind == Unwinder::Libgcc && !unregistered_.empty())
    return fmt::format("the process unwinds with {}, and the stub's unwind information is not registered "
                       "with it ({}): an exception unwinding through the stub would fail",
                       u.where, unregistered_);
  std::ifstream status(fmt::format("/proc/{}/task/{}/status", pid_, tid));
  for (std::string line; std::getline(status, line);)
    if (line.rfind("x86_Thread_features:", 0) == 0 && line.find("shstk") != std::string::npos)
      return "the thread has a shadow stack";
  return "";
}

}  // namespace graft
