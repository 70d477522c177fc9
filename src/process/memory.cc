#include "process/memory.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "process/proc_status.h"

namespace graft {

ProcessMemory::ProcessMemory(pid_t pid) : pid_(pid) {
  fd_.reset(open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDWR | O_CLOEXEC));
  int err = errno;
  if (!fd_ && err == ENOENT) fail(ErrorCode::no_such_process, "process {} does not exist", pid);
  if (!fd_ && (err == EACCES || err == EPERM))
    fail(ErrorCode::permission_denied,
         "process {}: permission denied opening its memory (graft runs as uid {}: it needs root, or "
         "the process's own uid and ptrace allowed by /proc/sys/kernel/yama/ptrace_scope)",
         pid, geteuid());
  if (!fd_ && err == ESRCH) {
    // /proc/PID exists but has no memory: a kernel thread or a zombie.
    check_process_changeable(pid);
    fail(ErrorCode::no_such_process, "process {} has exited", pid);
  }
  if (!fd_) fail("process {}: cannot open its memory: {}", pid, errno_text(err));
}

ProcessMemory::~ProcessMemory() = default;

bool ProcessMemory::try_read(RemoteAddress at, void* out, size_t size) const {
  if (size == 0) return true;
  iovec local{out, size}, remote{reinterpret_cast<void*>(at.value), size};
  if (process_vm_readv(pid_, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size)) return true;
  return pread(fd_.get(), out, size, static_cast<off_t>(at.value)) == static_cast<ssize_t>(size);
}

Bytes ProcessMemory::read(RemoteAddress at, size_t size) const {
  Bytes out(size);
  if (!try_read(at, out.data(), size))
    fail("process {}: cannot read {} bytes at {}: {}", pid_, size, at, errno_text(errno));
  return out;
}

void ProcessMemory::write(RemoteAddress at, std::span<const uint8_t> data) const {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = pwrite(fd_.get(), data.data() + done, data.size() - done,
                       static_cast<off_t>(at.value + done));
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      fail("process {}: cannot write {} bytes at {}: {}", pid_, data.size(), at,
           n < 0 ? errno_text(errno) : "short write");
    }
    done += n;
  }
}

}  // namespace graft
