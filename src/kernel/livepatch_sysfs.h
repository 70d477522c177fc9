// The kernel's livepatch state as /sys/kernel/livepatch shows it, and the
// tasks a transition waits for (/proc/PID/task/TID/patch_state). Every file
// read is validated; a value the kernel would never write is an error.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace graft::kernel {

struct LivepatchFunction {
  std::string object;  // "vmlinux" or a module
  std::string name;
  unsigned sympos = 0;
};

// A klp_object of a patch: vmlinux, or a module the patch waits for until
// it loads (NAME/OBJECT/patched is 1 once its functions are patched).
struct LivepatchObject {
  std::string name;
  bool patched = false;
};

struct LivepatchState {
  std::string name;
  bool enabled = false;
  bool in_transition = false;
  std::vector<LivepatchObject> objects;
  std::vector<LivepatchFunction> functions;
};

// A task that has not yet switched to the state the transition goes to.
struct PendingTask {
  int pid = 0, tid = 0;
  std::string comm;
  int patch_state = -1;
  std::vector<std::string> stack;  // /proc/PID/task/TID/stack, one frame a line
};

class LivepatchSysfs {
 public:
  explicit LivepatchSysfs(std::string root = "/sys/kernel/livepatch", std::string proc = "/proc");
  bool available() const;               // the kernel has livepatch
  std::vector<std::string> names() const;  // the patches registered now
  std::optional<LivepatchState> read(const std::string& name) const;
  void set_enabled(const std::string& name, bool enabled) const;
  void force(const std::string& name) const;
  // Tasks whose patch_state is not `target` (1 while patching, 0 while
  // unpatching); -1 (no transition) does not count.
  std::vector<PendingTask> pending_tasks(int target) const;

 private:
  std::string root_, proc_;
};

bool valid_livepatch_name(const std::string& name);

}  // namespace graft::kernel
