#include "arch/x86_64/syscall_restart.h"

#include <sys/syscall.h>

#include <cerrno>

namespace graft::arch {

namespace {

constexpr long kRestartNoHand = -514;  // ERESTARTNOHAND (linux/errno.h)

bool ends_with_eintr_on_any_stop(long nr) {
  switch (nr) {
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
    case SYS_epoll_pwait2:
#endif
    case SYS_rt_sigtimedwait:
    case SYS_semop:
    case SYS_semtimedop:
    case SYS_io_getevents:
    case SYS_io_pgetevents:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool restart_call_ended_by_stop(Registers& r) {
  long nr = static_cast<long>(r.orig_rax);
  if (nr < 0 || static_cast<long>(r.rax) != -EINTR || !ends_with_eintr_on_any_stop(nr)) return false;
  r.rax = static_cast<uint64_t>(kRestartNoHand);
  return true;
}

}  // namespace graft::arch
