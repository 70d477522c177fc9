#include "ops/exec_watch.h"

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "loader/operations.h"

namespace graft::ops {

namespace {

class ProcConnector : public ExecWatch {
 public:
  ProcConnector() {
    fd_ = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
    if (fd_ < 0) fail("netlink connector socket: {}", errno_text(errno));
    int size = 4 << 20;  // bursts of execs (a shell script) must not overflow it
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) == 0 ||
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = CN_IDX_PROC;
    addr.nl_pid = 0;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      int err = errno;
      close(fd_);
      fail("binding to the proc connector: {}", errno_text(err));
    }
    listen(PROC_CN_MCAST_LISTEN);
  }
  ~ProcConnector() override {
    try {
      listen(PROC_CN_MCAST_IGNORE);
    } catch (const Error&) {
    }
    close(fd_);
  }
  int fd() const override { return fd_; }
  int poll_interval_ms() const override { return -1; }
  std::string describe() const override { return "the kernel's process-event connector (PROC_EVENT_EXEC)"; }

  std::vector<pid_t> new_processes(bool& lost) override {
    std::vector<pid_t> out;
    alignas(nlmsghdr) char buf[16384];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          lost = true;
          continue;
        }
        break;  // EAGAIN: drained
      }
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
           h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_NOOP) continue;
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_event))) continue;
        auto* msg = static_cast<cn_msg*>(NLMSG_DATA(h));
        if (msg->id.idx != CN_IDX_PROC || msg->id.val != CN_VAL_PROC) continue;
        proc_event ev;
        std::memcpy(&ev, msg->data, sizeof ev);
        // The thread group: an execve from any thread makes it the leader.
        if (ev.what == proc_event::PROC_EVENT_EXEC) out.push_back(ev.event_data.exec.process_tgid);
      }
    }
    return out;
  }

 private:
  void listen(proc_cn_mcast_op op) {
    // nlmsghdr, cn_msg (whose data is a flexible array), the operation.
    alignas(nlmsghdr) char req[NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_cn_mcast_op))] = {};
    auto* header = reinterpret_cast<nlmsghdr*>(req);
    header->nlmsg_len = sizeof req;
    header->nlmsg_type = NLMSG_DONE;
    header->nlmsg_pid = static_cast<uint32_t>(getpid());
    auto* msg = static_cast<cn_msg*>(NLMSG_DATA(header));
    msg->id.idx = CN_IDX_PROC;
    msg->id.val = CN_VAL_PROC;
    msg->len = sizeof(proc_cn_mcast_op);
    std::memcpy(msg->data, &op, sizeof op);
    if (send(fd_, req, sizeof req, 0) != static_cast<ssize_t>(sizeof req))
      fail("subscribing to the proc connector: {}", errno_text(errno));
  }
  int fd_ = -1;
};

// New pids in /proc. A pid reused between two looks, or an execve in a
// process already seen, is missed here: the daemon's periodic rescan
// catches them.
class ProcPoller : public ExecWatch {
 public:
  ProcPoller() {
    for (pid_t p : all_processes()) known_.insert(p);
  }
  int fd() const override { return -1; }
  int poll_interval_ms() const override { return 250; }
  std::string describe() const override { return "polling /proc every 250 ms"; }
  std::vector<pid_t> new_processes(bool&) override {
    std::set<pid_t> now;
    std::vector<pid_t> out;
    for (pid_t p : all_processes()) {
      now.insert(p);
      if (!known_.count(p)) out.push_back(p);
    }
    known_ = std::move(now);
    return out;
  }

 private:
  std::set<pid_t> known_;
};

}  // namespace

std::unique_ptr<ExecWatch> open_exec_watch(bool force_polling, std::string& why) {
  if (force_polling) {
    why = "--poll given";
    return std::make_unique<ProcPoller>();
  }
  try {
    return std::make_unique<ProcConnector>();
  } catch (const Error& e) {
    why = e.what();
    return std::make_unique<ProcPoller>();
  }
}

}  // namespace graft::ops
