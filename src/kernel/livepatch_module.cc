#include "kernel/livepatch_module.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/klog.h>
#include <sys/syscall.h>
#include <unistd.h>


#include "common/error.h"
#include "common/file.h"
#include "kernel/livepatch_sysfs.h"

namespace graft::kernel {

namespace {

// The last kernel log lines that mention `name` or livepatch.
std::string kernel_log_about(const std::string& name) {
  int size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, nullptr, 0);
  if (size <= 0) return "";
  std::string buf(size_t(size), '\0');
  int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf.data(), size);
  if (n <= 0) return "";
  buf.resize(size_t(n));
  std::vector<std::string> lines;
  for (std::string& line : split_lines(buf))
    if (line.find(name) != std::string::npos || line.find("livepatch") != std::string::npos)
      lines.push_back(std::move(line));
  std::string out;
  for (size_t k = lines.size() > 6 ? lines.size() - 6 : 0; k < lines.size(); ++k) out += "\n  kernel: " + lines[k];
  return out;
}

}  // namespace

ModuleImage::ModuleImage(std::span<const uint8_t> bytes, std::string path)
    : fd_(static_cast<int>(syscall(SYS_memfd_create, "graft-kernel-module", MFD_CLOEXEC))), path_(std::move(path)) {
  if (!fd_) fail("{}: memfd_create: {}", path_, errno_text(errno));
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = write(fd_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("{}: writing the module to a memfd: {}", path_, errno_text(errno));
    done += static_cast<size_t>(n);
  }
}

std::string ModuleImage::proc_path() const { return fmt::format("/proc/self/fd/{}", fd_.get()); }

void load_module(const ModuleImage& image, const std::string& name) {
  const std::string& path = image.path();
  long rc = syscall(SYS_finit_module, image.fd(), "", 0);
  int err = errno;
  if (rc == 0) return;
  std::string hint;
  if (err == EEXIST) hint = " (a module of that name is loaded: revert it first, or build the patch under another name)";
  if (err == EPERM) hint = " (needs CAP_SYS_MODULE; module loading may be disabled)";
  fail("cannot load {} as module {}: {}{}{}", path, name, errno_text(err), hint, kernel_log_about(name));
}

bool unload_module(const std::string& name, std::string* why) {
  if (!valid_livepatch_name(name)) fail("'{}' is not a module name", name);
  if (syscall(SYS_delete_module, name.c_str(), O_NONBLOCK) == 0) return true;
  if (why) *why = errno_text(errno);
  return false;
}

std::vector<std::string> loaded_livepatch_modules() {
  std::vector<std::string> out;
  for (const std::string& line : split_lines(read_text_file("/proc/modules", 1 << 22))) {
    std::string name = line.substr(0, line.find(' '));
    if (!valid_livepatch_name(name)) continue;
    // Taint flags close the line, e.g. "(OEK)": K marks a livepatch module.
    size_t open_paren = line.rfind('(');
    if (open_paren != std::string::npos && line.back() == ')' &&
        line.find('K', open_paren) != std::string::npos)
      out.push_back(name);
  }
  return out;
}

}  // namespace graft::kernel
