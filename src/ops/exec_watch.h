// Tells the daemon about new programs: the kernel's process-event connector
// (netlink, PROC_EVENT_EXEC: one message per execve, as it happens), or,
// where the connector cannot be used (no CAP_NET_ADMIN, a kernel without
// CONFIG_PROC_EVENTS, a network namespace other than the initial one),
// polling /proc for pids not seen before.
#pragma once
#include <sys/types.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace graft::ops {

class ExecWatch {
 public:
  virtual ~ExecWatch() = default;
  // A descriptor to poll() for input, or -1 when the caller must call
  // new_processes() every poll_interval_ms().
  virtual int fd() const = 0;
  virtual int poll_interval_ms() const = 0;
  // The processes that ran execve since the last call. `lost` is set when
  // events were dropped (the socket buffer overflowed): rescan everything.
  virtual std::vector<pid_t> new_processes(bool& lost) = 0;
  virtual std::string describe() const = 0;
};

// The connector, unless `force_polling`; polling if it cannot be opened
// (`why` says why).
std::unique_ptr<ExecWatch> open_exec_watch(bool force_polling, std::string& why);

}  // namespace graft::ops
