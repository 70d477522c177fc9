#include "process/process_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "common/interrupt.h"

namespace graft {

namespace {

// A directory only we (or root) own, not a symlink planted by someone else.
void make_private_dir(const std::string& dir, mode_t mode) {
  if (mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) fail("{}: {}", dir, errno_text(errno));
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) fail("{}: {}", dir, errno_text(errno));
  if (!S_ISDIR(st.st_mode) || (st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & 022))
    fail("{}: not a directory owned by root or uid {} and writable only by its owner", dir, geteuid());
}

std::string holder(int fd) {
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
  return pid > 0 ? fmt::format("graft pid {}", pid) : "another graft";
}

}  // namespace

std::string ProcessLock::directory() {
  if (geteuid() == 0) {
    make_private_dir("/run/graft", 0755);
    return "/run/graft";
  }
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string dir = runtime && *runtime ? std::string(runtime) + "/graft"
                                        : fmt::format("/tmp/graft-{}", geteuid());
  make_private_dir(dir, 0700);
  return dir;
}

ProcessLock::ProcessLock(pid_t pid, double timeout_s) {
  std::string path = fmt::format("{}/{}.lock", directory(), pid);
  fd_.reset(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd_) fail("{}: {}", path, errno_text(errno));
  auto start = Clock::now();
  while (flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      int err = errno;
      fail("{}: {}", path, errno_text(err));
    }
    if (int sig = interrupt_signal()) {
      fail(ErrorCode::interrupted, "interrupted by {} while waiting for the lock of process {}",
           signal_name(sig), pid);
    }
    if (ms_since(start) > timeout_s * 1000) {
      std::string who = holder(fd_.get());
      fail(ErrorCode::locked, "process {} is being changed by {} (lock {}); gave up after {:.0f} s", pid, who, path,
           timeout_s);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // For the message of a graft that waits on us.
  std::string me = std::to_string(getpid()) + "\n";
  if (ftruncate(fd_.get(), 0) == 0 && pwrite(fd_.get(), me.data(), me.size(), 0) < 0) {
    // Only the message suffers.
  }
}

ProcessLock::~ProcessLock() {
  // The file stays (unlinking a lock file races with a graft that opened
  // it), emptied: a later holder that is not graft is not named as us.
  if (fd_ && ftruncate(fd_.get(), 0) != 0) {
    // Only a later message suffers.
  }
}

}  // namespace graft
