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

bool put_back_return_address(const ProcessMemory& memory, const arch::Registers& regs, uint64_t stub,
                             uint64_t slot, uint64_t original) {
  uint64_t word = 0;
  if (slot < arch::sp(regs) || !memory.try_read({slot}, &word, sizeof word) || word != stub) return false;
  memory.write_value({slot}, original);
  return true;
}

std::string ReturnTrapPolicy::refusal(pid_t tid) const {
  std::ifstream maps(fmt::format("/proc/{}/maps", pid_));
  for (std::string line; std::getline(maps, line);) {
    auto slash = line.rfind('/');
    if (slash == std::string::npos) continue;
    std::string file = line.substr(slash + 1);
    for (const char* lib : {"libstdc++", "libgcc_s", "libc++", "libunwind"})
      if (file.rfind(lib, 0) == 0)
        return fmt::format("the process maps {}: an exception unwinding through the stub would fail", file);
  }
  if (!static_unwinder_) {
    // A static executable carries its unwinder (libgcc_eh) inside: no
    // library shows in the maps then.
    static_unwinder_ = false;
    try {
      ElfFile exe(fmt::format("/proc/{}/exe", pid_));
      for (const auto& sym : exe.symbols())
        if (sym.defined() && sym.name == "_Unwind_RaiseException") static_unwinder_ = true;
    } catch (const Error&) {
      static_unwinder_ = true;  // cannot tell: assume the worst
    }
  }
  if (*static_unwinder_)
    return "the executable links an unwinder (_Unwind_RaiseException): an exception unwinding through "
           "the stub would fail";
  std::ifstream status(fmt::format("/proc/{}/task/{}/status", pid_, tid));
  for (std::string line; std::getline(status, line);)
    if (line.rfind("x86_Thread_features:", 0) == 0 && line.find("shstk") != std::string::npos)
      return "the thread has a shadow stack";
  return "";
}

}  // namespace graft
