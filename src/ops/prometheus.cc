#include "ops/prometheus.h"

#include <ctime>

#include "ops/patch_store.h"

namespace graft::ops {

namespace {

// Label values: backslash, double quote and newline escaped (the format's rules).
std::string label(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

std::string prometheus_text(const StatusReport& report, const std::optional<SyncRecord>& last_sync) {
  std::string out;
  out += "# HELP graft_patch_processes Processes mapping the target of a stored patch, by state.\n";
  out += "# TYPE graft_patch_processes gauge\n";
  for (const auto& p : report.patches) {
    if (p.patch->standing != Standing::Applicable) continue;
    for (auto s : {ProcessState::Patched, ProcessState::NotPatched, ProcessState::Unpatchable})
      out += fmt::format("graft_patch_processes{{patch=\"{}\",id=\"{}\",state=\"{}\"}} {}\n",
                         label(p.patch->stored.name), p.patch->stored.id,
                         s == ProcessState::Patched ? "patched"
                         : s == ProcessState::NotPatched ? "unpatched" : "unpatchable",
                         p.count(s));
  }
  out += "# HELP graft_patch_applicable Whether a stored patch applies to this host (0: superseded, other tag, refused).\n";
  out += "# TYPE graft_patch_applicable gauge\n";
  for (const auto& p : report.patches)
    out += fmt::format("graft_patch_applicable{{patch=\"{}\",id=\"{}\",standing=\"{}\"}} {}\n",
                       label(p.patch->stored.name), p.patch->stored.id,
                       standing_name(p.patch->standing), p.patch->standing == Standing::Applicable ? 1 : 0);
  if (report.kernel.livepatch) {
    out += "# HELP graft_kernel_livepatch_enabled Whether a kernel livepatch is enabled.\n";
    out += "# TYPE graft_kernel_livepatch_enabled gauge\n";
    for (const auto& p : report.kernel.patches)
      out += fmt::format("graft_kernel_livepatch_enabled{{patch=\"{}\"}} {}\n", label(p.name), p.enabled ? 1 : 0);
    out += "# HELP graft_kernel_livepatch_transition Whether a kernel livepatch is in transition.\n";
    out += "# TYPE graft_kernel_livepatch_transition gauge\n";
    for (const auto& p : report.kernel.patches)
      out += fmt::format("graft_kernel_livepatch_transition{{patch=\"{}\"}} {}\n", label(p.name),
                         p.in_transition ? 1 : 0);
    out += "# HELP graft_kernel_livepatch_pending_tasks Tasks a kernel livepatch transition still waits for.\n";
    out += "# TYPE graft_kernel_livepatch_pending_tasks gauge\n";
    out += fmt::format("graft_kernel_livepatch_pending_tasks {}\n", report.kernel.pending_tasks);
  }
  out += "# HELP graft_uninspectable_processes Processes whose memory maps graft could not read.\n";
  out += "# TYPE graft_uninspectable_processes gauge\n";
  out += fmt::format("graft_uninspectable_processes {}\n", report.uninspectable);
  out += "# HELP graft_all_patched 1 when every process mapping a stored patch's target carries it.\n";
  out += "# TYPE graft_all_patched gauge\n";
  out += fmt::format("graft_all_patched {}\n", report.all_patched() ? 1 : 0);
  if (last_sync) {
    out += "# HELP graft_last_sync_timestamp_seconds When the last sync (graft sync or the daemon) ended.\n";
    out += "# TYPE graft_last_sync_timestamp_seconds gauge\n";
    out += fmt::format("graft_last_sync_timestamp_seconds {}\n", last_sync->time);
    out += "# HELP graft_last_sync_success 1 if the last sync left every applicable process patched.\n";
    out += "# TYPE graft_last_sync_success gauge\n";
    out += fmt::format("graft_last_sync_success {}\n", last_sync->ok ? 1 : 0);
  }
  out += "# HELP graft_status_timestamp_seconds When graft status wrote this file.\n";
  out += "# TYPE graft_status_timestamp_seconds gauge\n";
  out += fmt::format("graft_status_timestamp_seconds {}\n", static_cast<long long>(std::time(nullptr)));
  return out;
}

void write_prometheus_file(const std::string& path, const StatusReport& report,
                           const std::optional<SyncRecord>& last_sync) {
  write_file_atomically(path, prometheus_text(report, last_sync));
}

}  // namespace graft::ops
