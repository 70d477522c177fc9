#include "loader/region.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#include "common/error.h"
#include "loader/patch_record.h"
#include "process/proc_status.h"
#include "process/remote_syscalls.h"

namespace graft {

namespace {
void check(long rc, const char* what, pid_t pid, bool adds_exec = false) {
  if (rc < 0 && rc > -4096) fail_remote_syscall(pid, what, static_cast<int>(-rc), adds_exec);
}
}  // namespace

void create_region(TargetSession& session, const RegionLayout& l, const std::string& name) {
  pid_t pid = session.pid();
  RemoteSyscalls sys(session.tracer(), session.memory(), session.maps());
  RemoteAddress name_at = sys.scratch_string(std::string(kRegionNamePrefix) + name);
  long fd = sys.call(SYS_memfd_create, name_at.value, MFD_CLOEXEC);
  check(fd, "memfd_create", pid);
  long rc = sys.call(SYS_ftruncate, fd, l.size);
  if (rc < 0) {
    sys.call(SYS_close, fd);
    check(rc, "ftruncate", pid);
  }
  long at = sys.call(SYS_mmap, l.address, l.size, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
  sys.call(SYS_close, fd);
  check(at, "mmap", pid);
  if (static_cast<uint64_t>(at) != l.address) {
    sys.call(SYS_munmap, at, l.size);
    fail("process {}: the kernel placed the patch region at {:#x}, not {:#x}", pid, at, l.address);
  }
  try {
    uint64_t code = l.address + l.image_offset;
    check(sys.call(SYS_mprotect, code, page_round_up(l.image.code_size), PROT_READ | PROT_EXEC),
          "mprotect", pid, true);
    if (l.transition_size)
      check(sys.call(SYS_mprotect, l.address + l.transition_offset, l.transition_size,
                     PROT_READ | PROT_WRITE),
            "mprotect", pid);
    if (l.gates_size)
      check(sys.call(SYS_mprotect, l.address + l.gates_offset, l.gates_size, PROT_READ | PROT_EXEC),
            "mprotect", pid, true);
    uint64_t data_size = page_round_up(l.image.data_size + l.image.bss_size);
    if (data_size)
      check(sys.call(SYS_mprotect, code + l.image.data_offset, data_size, PROT_READ | PROT_WRITE),
            "mprotect", pid);
  } catch (...) {
    sys.call(SYS_munmap, l.address, l.size);
    throw;
  }
}

void remove_region(TargetSession& session, uint64_t address, uint64_t size) {
  RemoteSyscalls sys(session.tracer(), session.memory(), session.maps());
  check(sys.call(SYS_munmap, address, size), "munmap", session.pid());
}

}  // namespace graft
