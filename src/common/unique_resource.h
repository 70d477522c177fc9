// Owners of the C resources graft opens (file descriptors, directories,
// libelf and libdw handles): closed once, on every path, when the owner
// goes.
#pragma once
#include <dirent.h>
#include <unistd.h>

#include <memory>
#include <utility>

namespace graft {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A C handle closed by `Close` (closedir, elf_end, dwfl_end...).
template <typename T, auto Close>
struct CloseWith {
  void operator()(T* p) const {
    if (p) Close(p);
  }
};
template <typename T, auto Close>
using UniqueHandle = std::unique_ptr<T, CloseWith<T, Close>>;

using UniqueDir = UniqueHandle<DIR, closedir>;

}  // namespace graft
