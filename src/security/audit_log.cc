#include "security/audit_log.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"

namespace graft {

namespace {

using json = nlohmann::json;

std::string user_name(uid_t uid) {
  passwd pw, *found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

// The kernel's login uid: who logged in, through sudo and su alike.
json login_uid() {
  try {
    long v = std::stol(read_text_file("/proc/self/loginuid", 64));
    if (v >= 0 && v != 4294967295L) return v;
  } catch (const std::exception&) {
  }
  return nullptr;
}

std::string executable(pid_t pid) {
  char buf[PATH_MAX];
  ssize_t n = readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : "";
}

std::string utc_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  return fmt::format("{}.{:03d}Z", buf, ts.tv_nsec / 1000000);
}

json or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

}  // namespace

AuditLog::AuditLog(const Policy& policy)
    : path_(policy.audit_log), quiet_failure_(geteuid() != 0 && !policy.audit_log_set) {}

void AuditLog::record(const AuditEvent& e) {
  uid_t uid = getuid();
  const char* sudo = std::getenv("SUDO_USER");
  std::string exe = e.pid > 0 ? executable(e.pid) : "";
  json line = {{"time", utc_now()},
               {"action", e.action},
               {"result", e.result},
               {"uid", uid},
               {"user", user_name(uid)},
               {"sudo_user", sudo && *sudo ? json(sudo) : json(nullptr)},
               {"login_uid", login_uid()},
               {"graft_pid", getpid()},
               {"pid", e.pid > 0 ? json(e.pid) : json(nullptr)},
               {"exe", or_null(exe)},
               {"patch_file", or_null(e.patch_file)},
               {"patch", or_null(e.patch_name)},
               {"patch_id", or_null(e.patch_id)},
               {"sha256", or_null(e.patch_sha256)},
               {"signer", or_null(e.signer)},
               {"reason", or_null(e.reason)}};
  // replace: a name or reason with invalid UTF-8 must not make dump() throw.
  std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace);

  std::lock_guard lock(mutex_);  // openlog/closelog and warned_ are shared
  // syslog(3): the journal, or whatever the machine's syslog daemon is.
  openlog("graft", LOG_PID, LOG_AUTHPRIV);
  syslog(e.result == "ok" ? LOG_NOTICE : LOG_WARNING,
         "%s %s: pid=%d exe=%s patch=%s id=%s sha256=%s signer=%s uid=%u user=%s sudo_user=%s%s%s",
         e.action.c_str(), e.result.c_str(), static_cast<int>(e.pid), exe.c_str(),
         e.patch_name.c_str(), e.patch_id.c_str(), e.patch_sha256.c_str(), e.signer.c_str(),
         static_cast<unsigned>(uid), user_name(uid).c_str(), sudo ? sudo : "",
         e.reason.empty() ? "" : " reason=", e.reason.c_str());
  closelog();

  if (path_.empty()) return;
  auto dir = path_.substr(0, path_.rfind('/'));
  if (!dir.empty()) mkdir(dir.c_str(), 0750);  // the usual /var/log/graft; EEXIST is fine
  int fd = open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  std::string err;
  if (fd < 0) {
    err = errno_text(errno);
  } else {
    text.push_back('\n');
    // One write per line under an exclusive lock: concurrent grafts never
    // interleave their lines.
    flock(fd, LOCK_EX);
    if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) err = errno_text(errno);
    flock(fd, LOCK_UN);
    close(fd);
  }
  if (!err.empty() && !quiet_failure_ && !warned_) {
    std::fprintf(stderr, "graft: warning: cannot write the audit log %s: %s\n", path_.c_str(), err.c_str());
    warned_ = true;
  }
}

}  // namespace graft
