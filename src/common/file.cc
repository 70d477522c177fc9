#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"

namespace graft {

namespace {
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};
}  // namespace

Bytes read_file(const std::string& path, size_t limit) {
  Fd f{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail("{}: {}", path, errno_text(errno));
  Bytes out;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{}: {}", path, errno_text(errno));
    }
    if (n == 0) break;
    if (out.size() + n > limit) fail("{}: larger than {} bytes", path, limit);
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.find('\n', start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::string read_text_file(const std::string& path, size_t limit) {
  Bytes b = read_file(path, limit);
  return std::string(b.begin(), b.end());
}

void write_file(const std::string& path, std::span<const uint8_t> data) {
  std::string tmp = path + ".tmp";
  Fd f{open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (f.fd < 0) fail("{}: {}", tmp, errno_text(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(f.fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{}: {}", tmp, errno_text(errno));
    }
    done += n;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) fail("{}: {}", path, errno_text(errno));
}

void write_text_file(const std::string& path, const std::string& text) {
  write_file(path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

}  // namespace graft
