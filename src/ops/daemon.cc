#include "ops/daemon.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>

#include "common/error.h"
#include "common/file.h"
#include "common/interrupt.h"
#include "common/realtime_priority.h"
#include "common/unique_resource.h"
#include "ops/desired_state.h"
#include "ops/exec_watch.h"
#include "ops/host_config.h"
#include "ops/host_state.h"
#include "ops/patch_status.h"
#include "ops/prometheus.h"
#include "ops/sync.h"
#include "security/audit_log.h"

namespace graft::ops {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  std::string line = fmt::format(format, std::forward<Args>(args)...);
  // Names come from targets and patch authors: no control characters.
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  std::fprintf(stderr, "graft daemon: %s\n", line.c_str());
  std::fflush(stderr);
}

// Drops a real-time policy for a scope (the rescan's walk over /proc).
class NormalPriority {
 public:
  NormalPriority() {
    policy_ = sched_getscheduler(0);
    sched_getparam(0, &param_);
    sched_param normal{};
    lowered_ = (policy_ & ~SCHED_RESET_ON_FORK) == SCHED_FIFO && sched_setscheduler(0, SCHED_OTHER, &normal) == 0;
  }
  ~NormalPriority() {
    if (lowered_) sched_setscheduler(0, policy_, &param_);
  }
  NormalPriority(const NormalPriority&) = delete;
  NormalPriority& operator=(const NormalPriority&) = delete;

 private:
  int policy_;
  sched_param param_{};
  bool lowered_ = false;
};

// When a new process that maps no target yet is looked at again: a library
// target is mapped by the dynamic loader, or later by dlopen (the rescan).
constexpr int kRecheckMs[] = {1, 2, 5, 10, 20, 50, 100, 250, 500, 1000};
constexpr int kRechecks = sizeof kRecheckMs / sizeof kRecheckMs[0];

class Daemon {
  // A new process to look at (again).
  struct Recheck {
    pid_t pid;
    int attempt;
    Clock::time_point seen;  // its exec event
  };

 public:
  explicit Daemon(const DaemonOptions& o)
      : o_(o), policy_(load_policy(o.policy)), audit_(policy_), store_(o.store), host_(o.store) {}

  int run() {
    // New processes are patched before they have run long: the daemon
    // reacts at real-time priority (SCHED_FIFO 1, as graft apply runs),
    // where it is allowed to. Its work is bounded (the processes of one
    // event); the periodic rescan drops back to the normal policy.
    // SIGTERM and SIGINT reach the applies too, wherever they run: none
    // starts after them, one running rolls back (ops/sync.h). SIGHUP is
    // read here only.
    watch_interrupts();
    RealtimePriority priority;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    UniqueFd sfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sfd) fail("signalfd: {}", errno_text(errno));

    std::error_code ec;
    std::filesystem::create_directories(o_.store, ec);
    UniqueFd inotify(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    int ifd = inotify.get();
    if (ifd < 0 || inotify_add_watch(ifd, o_.store.c_str(),
                                     IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE) < 0)
      say("cannot watch the store {} for changes ({}): reload with SIGHUP", o_.store, errno_text(errno));

    std::string why;
    watch_ = open_exec_watch(o_.force_polling, why);
    if (watch_->fd() < 0)
      say("watching new processes by polling /proc (the proc connector is unavailable: {})", why);
    say("started (pid {}): store {}, tags [{}], model {}, rescan every {} s, new processes from {}",
        getpid(), o_.store, fmt::join(o_.tags, ", "), o_.operation.model.value_or(kDefaultModel), o_.rescan_interval_s,
        watch_->describe());

    host_.load();
    reload("start");
    full_sync("start");
    auto next_rescan = Clock::now() + rescan_period();
    constexpr auto kNever = Clock::time_point::max();
    auto reload_at = kNever;  // a store change was seen: reload then
    auto next_poll = Clock::now();

    for (;;) {
      if (int sig = interrupt_signal()) {
        stopping(sig);
        return 0;
      }
      auto now = Clock::now();
      auto wake = next_rescan;
      if (!rechecks_.empty()) wake = std::min(wake, rechecks_.begin()->first);
      wake = std::min(wake, reload_at);
      if (watch_->fd() < 0) wake = std::min(wake, next_poll);
      int timeout = static_cast<int>(
          std::max<int64_t>(0, std::chrono::duration_cast<milliseconds>(wake - now).count() + 1));
      // The exec watch last: it is left out when /proc is polled instead.
      pollfd fds[4] = {{interrupt_wake_fd(), POLLIN, 0},
                       {sfd.get(), POLLIN, 0},
                       {ifd, POLLIN, 0},
                       {watch_->fd(), POLLIN, 0}};
      int n = poll(fds, watch_->fd() >= 0 ? 4 : 3, timeout);
      if (n < 0 && errno != EINTR) fail("poll: {}", errno_text(errno));
      if (interrupt_signal()) continue;

      if (fds[1].revents & POLLIN) {
        signalfd_siginfo si;
        bool hup = false;
        while (read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) hup = true;
        if (hup) {
          reload("SIGHUP");
          full_sync("reload");
          next_rescan = Clock::now() + rescan_period();
        }
      }
      if (ifd >= 0 && (fds[2].revents & POLLIN)) {
        alignas(inotify_event) char buf[8192];
        bool relevant = false;
        ssize_t len;
        while ((len = read(ifd, buf, sizeof buf)) > 0)
          for (char* p = buf; p < buf + len;) {
            auto* ev = reinterpret_cast<inotify_event*>(p);
            std::string name = ev->len ? ev->name : "";
            // Our own state files, and temporary files renamed into place.
            if (!name.empty() && name[0] != '.' && name.find(".tmp.") == std::string::npos) relevant = true;
            p += sizeof(inotify_event) + ev->len;
          }
        // `store add' writes two files: wait for the second.
        if (relevant && reload_at == kNever) reload_at = Clock::now() + milliseconds(100);
      }
      if (watch_->fd() >= 0 ? (fds[3].revents & POLLIN) != 0 : Clock::now() >= next_poll) {
        bool lost = false;
        auto pids = watch_->new_processes(lost);
        next_poll = Clock::now() + milliseconds(watch_->poll_interval_ms());
        auto seen = Clock::now();
        std::vector<Recheck> batch;
        for (pid_t pid : pids) batch.push_back({pid, 0, seen});
        look_at_new(batch);
        if (lost) {
          say("process events were lost (too many at once): rescanning every process");
          full_sync("lost events");
        }
      }
      now = Clock::now();
      if (now >= reload_at) {
        reload_at = kNever;
        reload("store changed");
        full_sync("reload");
        next_rescan = Clock::now() + rescan_period();
      }
      std::vector<Recheck> due;
      while (!rechecks_.empty() && rechecks_.begin()->first <= Clock::now()) {
        due.push_back(rechecks_.begin()->second);
        rechecks_.erase(rechecks_.begin());
      }
      look_at_new(due);
      if (Clock::now() >= next_rescan) {
        full_sync("rescan");
        next_rescan = Clock::now() + rescan_period();
      }
    }
  }

 private:
  Clock::duration rescan_period() const {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.rescan_interval_s));
  }

  void reload(const char* why) {
    state_ = load_desired_state(store_, policy_, o_.tags);
    // A reloaded store may carry a fixed patch: try again where one failed.
    host_.failures.clear();
    logged_failures_.clear();
    cache_.clear();
    size_t applicable = 0;
    for (const auto& d : state_.patches) {
      if (d.standing == Standing::Applicable) ++applicable;
      else say("{} ({}) not applied here: {}: {}", d.stored.name, d.stored.id, standing_name(d.standing), d.reason);
    }
    for (const auto& p : state_.problems) say("store problem: {}", p);
    say("loaded the store ({}): {} patches, {} applicable here, {} targets", why, state_.patches.size(),
        applicable, state_.by_build_id.size());
  }

  // `after_ms`: from the exec event to the process patched.
  void record(const SyncAction& a, bool final_attempt, std::optional<double> after_ms) {
    // A target still being mapped is looked at again (recheck, rescan).
    if (a.outcome == SyncOutcome::AlreadyApplied || a.outcome == SyncOutcome::Skipped ||
        a.outcome == SyncOutcome::NotReady)
      return;
    std::lock_guard lock(host_mutex_);  // workers read the failures meanwhile
    if (a.outcome == SyncOutcome::Interrupted) {
      // Said once, when the daemon stops; not a failure of the process.
      if (!a.tried) {
        ++not_started_;
        return;
      }
      audit_.record(audit_event_of(a));
      ++rolled_back_;
      if (a.result.unchanged != true) unsure_.push_back(a.pid);
      return;
    }
    if (a.outcome != SyncOutcome::Applied && !final_attempt) return;  // looked at again soon
    audit_.record(audit_event_of(a));
    for (const auto& r : a.result.recovered) say("pid {} ({}): repaired first: {}", a.pid, a.command, r);
    if (a.outcome == SyncOutcome::Applied) {
      host_.failures.erase({a.pid, a.start_time, a.patch.id});
      std::string after;
      if (after_ms) after = fmt::format(", {:.1f} ms after its exec was seen", *after_ms);
      say("pid {} ({}): applied {} ({}) in {:.1f} ms{}", a.pid, a.command, a.patch.name, a.patch.id,
          a.result.total_ms, after);
      return;
    }
    FailureKey key{a.pid, a.start_time, a.patch.id};
    host_.failures[key] = a.result.error;
    if (logged_failures_.insert(key).second)
      say("pid {} ({}): cannot apply {} ({}): {}; not retried (graft status shows it)", a.pid, a.command,
          a.patch.name, a.patch.id, a.result.error);
  }

  bool failed_before(const TargetProcess& p, const StoredPatch& s) {
    std::lock_guard lock(host_mutex_);
    return host_.failure(p.pid, p.start_time, s.id) != nullptr;
  }

  void full_sync(const char* why) {
    NormalPriority normal;  // applies raise it again (converge_process)
    SyncReport report = sync_all(
        state_, cache_, o_.operation, [&](const SyncAction& a) { record(a, true, std::nullopt); },
        [&](const TargetProcess& p, const StoredPatch& s) { return failed_before(p, s); }, o_.jobs);
    host_.last_sync = SyncRecord{std::time(nullptr), report.ok(), report.count(SyncOutcome::Applied),
                                 report.count(SyncOutcome::AlreadyApplied),
                                 report.count(SyncOutcome::Failed) + report.count(SyncOutcome::Skipped),
                                 "daemon"};
    if (std::string(why) != "rescan" || report.count(SyncOutcome::Applied) || report.count(SyncOutcome::Failed))
      say("sync ({}): {} applied, {} already applied, {} failed, {} not retried{}{}", why,
          report.count(SyncOutcome::Applied), report.count(SyncOutcome::AlreadyApplied),
          report.count(SyncOutcome::Failed), report.count(SyncOutcome::Skipped),
          report.count(SyncOutcome::Interrupted)
              ? fmt::format(", {} interrupted", report.count(SyncOutcome::Interrupted))
              : "",
          report.uninspectable ? fmt::format(", {} processes not inspectable", report.uninspectable) : "");
    save();
    if (!o_.prometheus.empty()) {
      try {
        StatusReport status = patch_status(state_, host_, cache_);
        write_prometheus_file(o_.prometheus, status, host_.last_sync);
      } catch (const Error& e) {
        say("cannot write {}: {}", o_.prometheus, e.what());
      }
    }
  }

  void save() {
    try {
      host_.save();
    } catch (const Error& e) {
      if (!save_warned_) say("cannot save the state for graft status: {}", e.what());
      save_warned_ = true;
    }
  }

  // Processes that have just run execve (attempt 0), or are looked at
  // again: inspected one after the other (cheap), then those that map a
  // target patched `jobs` at once (a burst of new programs, as a service
  // manager starts them, waits no longer than its slowest apply).
  void look_at_new(const std::vector<Recheck>& batch) {
    if (state_.by_build_id.empty() || batch.empty()) return;
    std::vector<Recheck> looked;
    std::vector<TargetProcess> todo;
    for (const auto& r : batch) {
      if (r.pid == getpid()) continue;
      TargetProcess p;
      Inspection what = inspect_process(r.pid, state_.build_ids(), cache_, p);
      if (what == Inspection::MapsNone && !last_look(r) && library_targets()) {
        look_again(r);
        continue;
      }
      if (what != Inspection::Maps) continue;
      looked.push_back(r);
      todo.push_back(std::move(p));
    }
    bool changed = false;
    converge_processes(
        state_, todo, cache_, o_.operation,
        [&](const TargetProcess& tp, const StoredPatch& s) { return failed_before(tp, s); }, o_.jobs,
        [&](size_t i, std::vector<SyncAction>& actions, Clock::time_point finished) {
          const Recheck& r = looked[i];
          bool last = last_look(r), failed = false;
          double after_ms = std::chrono::duration<double, std::milli>(finished - r.seen).count();
          for (const auto& a : actions) {
            failed |= a.outcome == SyncOutcome::Failed || a.outcome == SyncOutcome::NotReady;
            changed |= a.outcome == SyncOutcome::Applied || (last && a.outcome == SyncOutcome::Failed);
            record(a, last, after_ms);
          }
          // Early in a process's life an apply can fail because a library
          // the patch refers to is not mapped yet: try again a little
          // later. Also a library target may be mapped after the others.
          if ((failed || library_targets()) && !last) look_again(r);
        });
    if (changed) save();
  }

  // Applies that were running when the signal came rolled back (the
  // others did not start): said, with what may be left.
  void stopping(int sig) {
    std::string running = "no apply was running";
    if (rolled_back_)
      running = unsure_.empty()
                    ? fmt::format("{} running applies rolled back, the processes as they were", rolled_back_)
                    : fmt::format("{} running applies rolled back; pids {} may hold what graft left: "
                                  "`graft recover' repairs it",
                                  rolled_back_, fmt::join(unsure_, ", "));
    say("stopping ({}): {}{}", signal_name(sig), running,
        not_started_ ? fmt::format("; {} applies not started", not_started_) : "");
  }

  static bool last_look(const Recheck& r) { return r.attempt + 1 >= kRechecks; }

  void look_again(const Recheck& r) {
    rechecks_.emplace(r.seen + milliseconds(kRecheckMs[r.attempt]), Recheck{r.pid, r.attempt + 1, r.seen});
  }

  // Whether some applicable target is a shared library (mapped after the
  // exec event, by the dynamic loader).
  bool library_targets() const {
    for (const auto& [_, idx] : state_.by_build_id)
      if (state_.patches[idx.front()].stored.target_path.find(".so") != std::string::npos) return true;
    return false;
  }

  DaemonOptions o_;
  Policy policy_;
  AuditLog audit_;
  PatchStore store_;
  HostState host_;
  DesiredState state_;
  BuildIdCache cache_;
  std::unique_ptr<ExecWatch> watch_;
  std::multimap<Clock::time_point, Recheck> rechecks_;
  std::set<FailureKey> logged_failures_;
  bool save_warned_ = false;
  size_t rolled_back_ = 0;     // applies a stop signal interrupted
  size_t not_started_ = 0;     // ... or kept from starting
  std::vector<pid_t> unsure_;  // ... of which these were not shown unchanged
  std::mutex host_mutex_;  // host_.failures: read by the apply workers (failed_before)
};

}  // namespace

int run_daemon(const DaemonOptions& o) {
  if (!o.enabled) {
    say("disabled by {} (\"enable\": false): not starting", o.config_file);
    return 0;
  }
  try {
    if (disabled_on_command_line(read_text_file(o.kernel_cmdline, 1 << 16))) {
      say("disabled by graft.enable=0 on the kernel command line ({}): not starting", o.kernel_cmdline);
      return 0;
    }
  } catch (const Error&) {
  }
  return Daemon(o).run();
}

}  // namespace graft::ops
