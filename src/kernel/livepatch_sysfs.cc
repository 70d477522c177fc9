#include "kernel/livepatch_sysfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "common/error.h"
#include "common/file.h"

namespace graft::kernel {

namespace fs = std::filesystem;

bool valid_livepatch_name(const std::string& name) {
  if (name.empty() || name.size() > 55) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
}

namespace {

bool read_flag(const std::string& path) {
  std::string v = read_text_file(path, 64);
  if (v == "0\n") return false;
  if (v == "1\n") return true;
  fail("{}: expected 0 or 1, read '{}'", path, v.substr(0, 20));
}

void write_value(const std::string& path, const char* value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", path, errno_text(errno));
  ssize_t n = write(fd, value, strlen(value));
  int err = errno;
  close(fd);
  if (n < 0) fail("cannot write '{}' to {}: {}", value, path, errno_text(err));
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = opendir(path.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<int> number(const std::string& s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

LivepatchSysfs::LivepatchSysfs(std::string root, std::string proc) : root_(std::move(root)), proc_(std::move(proc)) {}

bool LivepatchSysfs::available() const { return fs::is_directory(root_); }

std::vector<std::string> LivepatchSysfs::names() const {
  std::vector<std::string> out;
  for (auto& n : list_dir(root_)) {
    if (!valid_livepatch_name(n)) fail("{}: unexpected entry '{}'", root_, n);
    out.push_back(n);
  }
  return out;
}

std::optional<LivepatchState> LivepatchSysfs::read(const std::string& name) const {
  if (!valid_livepatch_name(name)) fail("'{}' is not a livepatch name", name);
  std::string dir = root_ + "/" + name;
  if (!fs::is_directory(dir)) return std::nullopt;
  LivepatchState s;
  s.name = name;
  try {
    s.enabled = read_flag(dir + "/enabled");
    s.in_transition = read_flag(dir + "/transition");
  } catch (const Error&) {
    if (!fs::is_directory(dir)) return std::nullopt;  // removed meanwhile
    throw;
  }
  // NAME/OBJECT/FUNCTION,SYMPOS directories; the rest are attributes.
  for (auto& object : list_dir(dir)) {
    if (!fs::is_directory(dir + "/" + object)) continue;
    if (!valid_livepatch_name(object)) fail("{}: unexpected object entry '{}'", dir, object);
    // Kernels before 6.0 have no per-object `patched`: an object is patched
    // with its patch there, as far as graft can tell.
    std::string patched = dir + "/" + object + "/patched";
    s.objects.push_back({object, fs::exists(patched) ? read_flag(patched) : s.enabled});
    for (auto& func : list_dir(dir + "/" + object)) {
      if (!fs::is_directory(dir + "/" + object + "/" + func)) continue;
      size_t comma = func.rfind(',');
      auto pos = comma == std::string::npos ? std::nullopt : number(func.substr(comma + 1));
      if (!pos || *pos < 0) fail("{}/{}: unexpected function entry '{}'", dir, object, func);
      s.functions.push_back({object, func.substr(0, comma), unsigned(*pos)});
    }
  }
  return s;
}

void LivepatchSysfs::set_enabled(const std::string& name, bool enabled) const {
  if (!valid_livepatch_name(name)) fail("'{}' is not a livepatch name", name);
  write_value(root_ + "/" + name + "/enabled", enabled ? "1" : "0");
}

void LivepatchSysfs::force(const std::string& name) const {
  if (!valid_livepatch_name(name)) fail("'{}' is not a livepatch name", name);
  write_value(root_ + "/" + name + "/force", "1");
}

std::vector<PendingTask> LivepatchSysfs::pending_tasks(int target) const {
  std::vector<PendingTask> out;
  for (auto& p : list_dir(proc_)) {
    auto pid = number(p);
    if (!pid) continue;
    for (auto& t : list_dir(proc_ + "/" + p + "/task")) {
      auto tid = number(t);
      if (!tid) continue;
      std::string base = proc_ + "/" + p + "/task/" + t;
      std::string state;
      try {
        state = read_text_file(base + "/patch_state", 32);
      } catch (const Error&) {
        continue;  // exited
      }
      if (!state.empty() && state.back() == '\n') state.pop_back();
      auto v = number(state);
      if (!v || *v < -1 || *v > 1) fail("{}/patch_state: unexpected '{}'", base, state);
      if (*v == target || *v == -1) continue;  // switched, or no transition (a new task)
      PendingTask task;
      task.pid = *pid;
      task.tid = *tid;
      task.patch_state = *v;
      try {
        task.comm = read_text_file(base + "/comm", 64);
        if (!task.comm.empty() && task.comm.back() == '\n') task.comm.pop_back();
        for (std::string& frame : split_lines(read_text_file(base + "/stack", 1 << 16)))
          if (!frame.empty()) task.stack.push_back(std::move(frame));
      } catch (const Error&) {
        // exited, or no stack for this task: report what was read
      }
      out.push_back(std::move(task));
    }
  }
  return out;
}

}  // namespace graft::kernel
