#include "cli/ops_commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "common/file.h"
#include "common/interrupt.h"
#include "ops/daemon.h"
#include "ops/desired_state.h"
#include "ops/host_config.h"
#include "ops/host_state.h"
#include "ops/patch_status.h"
#include "ops/patch_store.h"
#include "ops/prometheus.h"
#include "ops/sync.h"
#include "security/audit_log.h"

namespace graft::cli {

using json = nlohmann::json;
using namespace graft::ops;

namespace {

// Names chosen by patch authors and targets: no escape sequences to the terminal.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  return out;
}

// Settings: the command line, else the configuration file, else the default.
struct Resolved {
  HostConfig config;
  std::string store;
  std::vector<std::string> tags;
};

Resolved resolve(const OpsArgs& a) {
  Resolved r;
  r.config = load_host_config(a.config);
  const char* env = std::getenv("GRAFT_STORE");
  r.store = !a.store.empty() ? a.store
            : env && *env    ? std::string(env)
            : !r.config.store.empty() ? r.config.store
                                      : std::string(kDefaultStoreDir);
  r.tags = !a.tags.empty() ? a.tags : r.config.tags;
  return r;
}

json stored_json(const StoredPatch& s) {
  return {{"id", s.id},
          {"name", s.name},
          {"sha256", s.sha256},
          {"file", s.file},
          {"target", s.target_path},
          {"build_id", s.build_id},
          {"cumulative", s.cumulative},
          {"signer", s.signer.empty() ? json(nullptr) : json(s.signer)},
          {"tag", s.tag.empty() ? json(nullptr) : json(s.tag)},
          {"seq", s.seq},
          {"added_at", s.added_at},
          {"source", s.source}};
}

std::string tag_text(const std::string& tag) { return tag.empty() ? "-" : printable(tag); }

}  // namespace

int store_add(const OpsArgs& a) {
  Resolved r = resolve(a);
  Policy policy = load_policy(a.policy);
  PatchStore store(r.store);
  try {
    AddResult res = store.add(a.file, a.tag, policy);
    if (a.json) {
      fmt::print("{}\n", json{{"command", "store add"}, {"store", r.store}, {"changed", res.changed},
                              {"patch", stored_json(res.patch)}, {"refused", nullptr}}
                             .dump());
    } else if (!res.changed) {
      fmt::print("{} (id {}) is already in the store {} (tag {}): nothing changed\n",
                 printable(res.patch.name), res.patch.id, r.store, tag_text(res.patch.tag));
    } else {
      fmt::print("stored {} (id {}) for {} in {} (tag {}, position {})\n", printable(res.patch.name),
                 res.patch.id, printable(res.patch.target_path), r.store, tag_text(res.patch.tag),
                 res.patch.seq);
    }
    return 0;
  } catch (const StoreRefusal& e) {
    if (a.json)
      fmt::print("{}\n", json{{"command", "store add"}, {"store", r.store}, {"changed", false},
                              {"patch", nullptr}, {"refused", e.what()}}
                             .dump());
    else
      fmt::print(stderr, "graft: refused: {}\n", e.what());
    return e.kind == StoreRefusal::Kind::Policy ? kExitRefused : 2;
  }
}

int store_remove(const OpsArgs& a) {
  Resolved r = resolve(a);
  PatchStore store(r.store);
  StoredPatch s = store.remove(a.which);
  if (a.json)
    fmt::print("{}\n", json{{"command", "store remove"}, {"store", r.store}, {"changed", true},
                            {"patch", stored_json(s)}}
                           .dump());
  else
    fmt::print("removed {} (id {}) from {}; processes that carry it keep it until `graft revert'\n",
               printable(s.name), s.id, r.store);
  return 0;
}

int store_tag(const OpsArgs& a) {
  Resolved r = resolve(a);
  PatchStore store(r.store);
  AddResult res = store.set_tag(a.which, a.tag);
  if (a.json)
    fmt::print("{}\n", json{{"command", "store tag"}, {"store", r.store}, {"changed", res.changed},
                            {"patch", stored_json(res.patch)}}
                           .dump());
  else
    fmt::print("{} (id {}): tag {}{}\n", printable(res.patch.name), res.patch.id, tag_text(res.patch.tag),
               res.changed ? "" : " (unchanged)");
  return 0;
}

int store_list(const OpsArgs& a) {
  Resolved r = resolve(a);
  PatchStore store(r.store);
  std::vector<std::string> problems;
  auto patches = store.list(&problems);
  if (a.json) {
    json list = json::array();
    for (const auto& s : patches) list.push_back(stored_json(s));
    fmt::print("{}\n", json{{"store", r.store}, {"patches", list}, {"problems", problems}}.dump());
  } else {
    if (patches.empty()) fmt::print("no patches in the store {}\n", r.store);
    else fmt::print("{:<4} {:<12} {:<24} {:<10} {:<12} {}\n", "#", "ID", "NAME", "TAG", "SIGNED", "TARGET");
    for (const auto& s : patches)
      fmt::print("{:<4} {:<12} {:<24} {:<10} {:<12} {}{}\n", s.seq, s.id, printable(s.name),
                 tag_text(s.tag), s.signer.empty() ? "no" : "yes", printable(s.target_path),
                 s.cumulative ? " (cumulative)" : "");
    for (const auto& p : problems) fmt::print("WARNING: {}\n", printable(p));
  }
  return problems.empty() ? 0 : 1;
}

int sync(const OpsArgs& a) {
  Resolved r = resolve(a);
  Policy policy = load_policy(a.policy);
  AuditLog audit(policy);
  PatchStore store(r.store);
  DesiredState state = load_desired_state(store, policy, r.tags);
  HostState host(r.store);
  host.load();
  OperationOptions options;
  options.timeout_s = a.timeout_s;
  options.model = a.model ? a.model : r.config.model;
  BuildIdCache cache;
  SyncReport report = sync_all(state, cache, options, [&](const SyncAction& act) {
    bool attempt = act.outcome != SyncOutcome::AlreadyApplied &&
                   (act.outcome != SyncOutcome::Interrupted || act.tried);
    if (attempt) audit.record(audit_event_of(act));
    if (act.outcome == SyncOutcome::Failed)
      host.failures[{act.pid, act.start_time, act.patch.id}] = act.result.error;
    else if (act.outcome != SyncOutcome::Interrupted)
      host.failures.erase({act.pid, act.start_time, act.patch.id});
    if (a.json) return;
    std::string who = fmt::format("pid {} ({})", act.pid, printable(act.command));
    std::string what = fmt::format("{} (id {})", printable(act.patch.name), act.patch.id);
    for (const auto& rec : act.result.recovered) fmt::print("{}: repaired first: {}\n", who, rec);
    switch (act.outcome) {
      case SyncOutcome::Applied:
        fmt::print("{}: applied {} in {:.1f} ms\n", who, what, act.result.total_ms);
        break;
      case SyncOutcome::AlreadyApplied: fmt::print("{}: {} already applied\n", who, what); break;
      case SyncOutcome::Failed:
      case SyncOutcome::Skipped:
      case SyncOutcome::NotReady:
        fmt::print("{}: FAILED to apply {}: {}\n", who, what, printable(act.result.error));
        break;
      case SyncOutcome::Interrupted:
        fmt::print("{}: {} not applied: {}\n", who, what, printable(act.result.error));
        break;
    }
    std::fflush(stdout);
  }, nullptr, a.jobs);
  host.last_sync = SyncRecord{std::time(nullptr), report.ok(), report.count(SyncOutcome::Applied),
                              report.count(SyncOutcome::AlreadyApplied),
                              report.count(SyncOutcome::Failed), "sync"};
  std::string save_error;
  try {
    host.save();
  } catch (const Error& e) {
    save_error = e.what();
  }
  if (a.json) {
    json results = json::array();
    for (const auto& act : report.actions)
      results.push_back({{"pid", act.pid},
                         {"command", act.command},
                         {"patch", act.patch.name},
                         {"patch_id", act.patch.id},
                         {"outcome", outcome_name(act.outcome)},
                         {"ok", act.carried()},
                         {"already_applied", act.outcome == SyncOutcome::AlreadyApplied},
                         {"total_ms", act.result.total_ms},
                         {"recovered", act.result.recovered},
                         {"notes", act.result.notes},
                         {"error", act.carried() ? json(nullptr) : json(act.result.error)},
                         {"error_code", act.carried() ? json(nullptr) : json(error_code_name(act.result.error_code))}});
    fmt::print("{}\n", json{{"command", "sync"},
                            {"store", r.store},
                            {"ok", report.ok()},
                            {"changed", report.count(SyncOutcome::Applied) > 0},
                            {"applied", report.count(SyncOutcome::Applied)},
                            {"already_applied", report.count(SyncOutcome::AlreadyApplied)},
                            {"failed", report.count(SyncOutcome::Failed)},
                            {"interrupted", report.count(SyncOutcome::Interrupted)},
                            {"uninspectable", report.uninspectable},
                            {"problems", report.problems},
                            {"results", results}}
                           .dump());
  } else {
    for (const auto& p : report.problems) fmt::print("WARNING: {}\n", printable(p));
    fmt::print("sync: {} applied, {} already applied, {} failed", report.count(SyncOutcome::Applied),
               report.count(SyncOutcome::AlreadyApplied), report.count(SyncOutcome::Failed));
    if (size_t n = report.count(SyncOutcome::Interrupted)) {
      size_t unsure = 0;  // rolled back, but not shown to be as before
      for (const auto& act : report.actions)
        unsure += act.outcome == SyncOutcome::Interrupted && act.tried && act.result.unchanged != true;
      fmt::print("; {} not applied: interrupted by {} ({})", n, signal_name(interrupt_signal()),
                 unsure ? fmt::format("{} of those processes may hold what graft left: `graft recover' repairs it",
                                      unsure)
                        : std::string("those processes are as they were"));
    }
    if (report.uninspectable)
      fmt::print("; {} processes could not be inspected{}", report.uninspectable,
                 geteuid() == 0 ? " (not even by root)" : " (not root)");
    fmt::print("\n");
  }
  if (!save_error.empty()) fmt::print(stderr, "graft: warning: sync state not saved: {}\n", save_error);
  return report.ok() ? 0 : 1;
}

int status(const OpsArgs& a) {
  Resolved r = resolve(a);
  Policy policy = load_policy(a.policy);
  DesiredState state = a.file.empty() ? load_desired_state(PatchStore(r.store), policy, r.tags)
                                      : desired_state_of_file(a.file, policy);
  HostState host(r.store);
  host.load();
  BuildIdCache cache;
  StatusReport report = patch_status(state, host, cache);
  if (!a.prometheus.empty()) write_prometheus_file(a.prometheus, report, host.last_sync);
  if (a.json) {
    json patches = json::array();
    for (const auto& p : report.patches) {
      json procs = json::array();
      for (const auto& s : p.processes)
        procs.push_back({{"pid", s.pid}, {"command", s.command}, {"state", process_state_name(s.state)},
                         {"reason", s.reason.empty() ? json(nullptr) : json(s.reason)}});
      json j = stored_json(p.patch->stored);
      j["standing"] = standing_name(p.patch->standing);
      j["standing_reason"] = p.patch->reason.empty() ? json(nullptr) : json(p.patch->reason);
      j["patched"] = p.count(ProcessState::Patched);
      j["not_patched"] = p.count(ProcessState::NotPatched);
      j["unpatchable"] = p.count(ProcessState::Unpatchable);
      j["processes"] = procs;
      patches.push_back(j);
    }
    json last = nullptr;
    if (host.last_sync)
      last = {{"time", host.last_sync->time}, {"ok", host.last_sync->ok}, {"by", host.last_sync->by},
              {"applied", host.last_sync->applied}, {"failed", host.last_sync->failed}};
    json kernel = nullptr;
    if (report.kernel.livepatch) {
      json kps = json::array();
      for (const auto& p : report.kernel.patches) {
        json fns = json::array();
        for (const auto& f : p.functions) fns.push_back(f.object + ":" + f.name);
        kps.push_back({{"name", p.name}, {"enabled", p.enabled}, {"transition", p.in_transition}, {"functions", fns}});
      }
      kernel = {{"patches", kps},
                {"pending_tasks", report.kernel.pending_tasks},
                {"direction", report.kernel.direction.empty() ? json(nullptr) : json(report.kernel.direction)},
                {"error", report.kernel.error.empty() ? json(nullptr) : json(report.kernel.error)}};
    }
    fmt::print("{}\n", json{{"command", "status"},
                            {"store", a.file.empty() ? json(r.store) : json(nullptr)},
                            {"all_patched", report.all_patched()},
                            {"kernel", kernel},
                            {"uninspectable", report.uninspectable},
                            {"last_sync", last},
                            {"problems", state.problems},
                            {"patches", patches}}
                           .dump());
  } else {
    if (report.patches.empty()) fmt::print("no patches in the store {}\n", r.store);
    for (const auto& p : report.patches) {
      const StoredPatch& s = p.patch->stored;
      if (p.patch->standing != Standing::Applicable) {
        fmt::print("{} (id {}): {}: {}\n", printable(s.name), s.id, standing_name(p.patch->standing),
                   printable(p.patch->reason));
        continue;
      }
      fmt::print("{} (id {}) for {}, tag {}: {} patched, {} not patched, {} cannot be patched\n",
                 printable(s.name), s.id, printable(s.target_path), tag_text(s.tag),
                 p.count(ProcessState::Patched), p.count(ProcessState::NotPatched),
                 p.count(ProcessState::Unpatchable));
      for (const auto& st : p.processes) {
        std::string what = st.state == ProcessState::Patched      ? "patched"
                           : st.state == ProcessState::NotPatched ? "NOT PATCHED: " + printable(st.reason)
                                                                  : "CANNOT BE PATCHED: " + printable(st.reason);
        fmt::print("  pid {:<7} {:<16} {}\n", st.pid, printable(st.command), what);
      }
    }
    for (const auto& p : report.kernel.patches) {
      std::string state;
      if (!p.in_transition)
        state = p.enabled ? "patched" : "DISABLED (loaded, not patching)";
      else if (report.kernel.direction.empty())
        state = "IN TRANSITION, starting to patch or finishing to unpatch";
      else
        state = fmt::format("IN TRANSITION, {}: {} task(s) not yet switched", report.kernel.direction,
                            report.kernel.pending_tasks);
      fmt::print("kernel livepatch {}: {} function(s), {}\n", printable(p.name), p.functions.size(), state);
    }
    if (!report.kernel.error.empty()) fmt::print("WARNING: kernel livepatch: {}\n", printable(report.kernel.error));
    for (const auto& p : state.problems) fmt::print("WARNING: {}\n", printable(p));
    if (report.uninspectable)
      fmt::print("{} processes could not be inspected (graft runs as uid {}{})\n", report.uninspectable,
                 geteuid(), geteuid() == 0 ? "; not even root may read their memory maps" : ": root sees more");
    if (host.last_sync) {
      char when[64];
      time_t t = host.last_sync->time;
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
      fmt::print("last sync: {} by {}: {} ({} applied, {} failed)\n", when, host.last_sync->by,
                 host.last_sync->ok ? "ok" : "FAILED", host.last_sync->applied, host.last_sync->failed);
    }
  }
  bool unknown = blind_spots(report.uninspectable);
  return report.all_patched() && !unknown && state.problems.empty() ? 0 : 1;
}

int daemon(const OpsArgs& a) {
  Resolved r = resolve(a);
  DaemonOptions o;
  o.store = r.store;
  o.tags = r.tags;
  o.policy = a.policy;
  o.config_file = r.config.source;
  o.enabled = r.config.enable;
  o.kernel_cmdline = a.kernel_cmdline;
  o.rescan_interval_s = a.rescan_s > 0 ? a.rescan_s : r.config.rescan_interval_s;
  o.operation.timeout_s = a.timeout_s;
  o.operation.model = a.model ? a.model : r.config.model;
  o.force_polling = a.poll;
  o.jobs = a.jobs;
  o.prometheus = !a.prometheus.empty() ? a.prometheus : r.config.prometheus;
  return run_daemon(o);
}

void add_ops_subcommands(CLI::App& app, OpsCommands& ops) {
  OpsArgs& a = ops.args;
  auto common = [&](CLI::App* c) {
    c->add_option("--store", a.store, "Patch store directory (default: $GRAFT_STORE, the configuration's, or /var/lib/graft/patches)");
    c->add_option("--config", a.config, "Host configuration (default: /etc/graft/graft.conf if it exists)");
  };
  auto* store = app.add_subcommand("store", "Manage the patch store: the patches this host wants applied");
  store->require_subcommand(1);
  ops.store_add = store->add_subcommand("add", "Verify a patch file and add it to the store (last in stacking order)");
  ops.store_add->add_option("patch", a.file, "Patch file")->required();
  ops.store_add->add_option("--tag", a.tag, "Roll-out tag: only hosts that take this tag apply it");
  ops.store_add->add_option("--policy", a.policy, "Policy file (default: $GRAFT_POLICY or /etc/graft/policy)");
  ops.store_add->add_flag("--json", a.json, "Machine-readable output");
  ops.store_remove = store->add_subcommand("remove", "Remove a patch from the store (processes keep it)");
  ops.store_remove->add_option("patch", a.which, "Patch id (or prefix) or name")->required();
  ops.store_remove->add_flag("--json", a.json, "Machine-readable output");
  ops.store_list = store->add_subcommand("list", "List the stored patches in stacking order");
  ops.store_list->add_flag("--json", a.json, "Machine-readable output");
  ops.store_tag = store->add_subcommand("tag", "Set or clear (no TAG) the roll-out tag of a stored patch");
  ops.store_tag->add_option("patch", a.which, "Patch id (or prefix) or name")->required();
  ops.store_tag->add_option("tag", a.tag, "New tag (none: every host applies it)");
  ops.store_tag->add_flag("--json", a.json, "Machine-readable output");
  for (auto* c : {ops.store_add, ops.store_remove, ops.store_list, ops.store_tag}) common(c);

  ops.sync = app.add_subcommand("sync", "Apply every stored patch to every process mapping its target that lacks it");
  ops.status = app.add_subcommand("status", "Show which processes carry the stored patches (or a given one)");
  ops.status->add_option("patch", a.file, "A patch file instead of the store");
  ops.status->add_option("--prometheus", a.prometheus, "Also write node_exporter's textfile format to FILE (atomically)");
  ops.daemon = app.add_subcommand("daemon", "Keep every current and future process patched as the store says");
  for (auto* c : {ops.sync, ops.status, ops.daemon}) {
    common(c);
    c->add_option("--tag", a.tags, "A roll-out tag this host takes (repeatable; default: the configuration's)")
        ->allow_extra_args(false);
    c->add_option("--policy", a.policy, "Policy file (default: $GRAFT_POLICY or /etc/graft/policy)");
  }
  for (auto* c : {ops.sync, ops.daemon}) {
    c->add_option_function<std::string>(
         "--model", [&a](const std::string& name) { a.model = *parse_model(name); },
         "Consistency model of the applies: stop, hybrid or lazy (default: the config's, else hybrid)")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
              return parse_model(s) ? "" : fmt::format("unknown model `{}' (stop, hybrid or lazy)", s);
            },
            "stop|hybrid|lazy"));
    c->add_option("--timeout", a.timeout_s, "Seconds each apply waits for threads to leave patched code")
        ->check(CLI::PositiveNumber);
  }
  ops.sync->add_flag("--json", a.json, "Machine-readable output");
  for (auto* c : {ops.sync, ops.daemon})
    c->add_option("--jobs", a.jobs, "Processes worked on at once (default: twice the CPUs graft may use)")
        ->check(CLI::Range(1, 1024));
  ops.status->add_flag("--json", a.json, "Machine-readable output");
  ops.daemon->add_option("--rescan", a.rescan_s, "Seconds between full rescans, for libraries loaded by dlopen (30)")
      ->check(CLI::PositiveNumber);
  ops.daemon->add_flag("--poll", a.poll, "Watch for new processes by polling /proc instead of the proc connector");
  ops.daemon->add_option("--prometheus", a.prometheus, "Write node_exporter's textfile format to FILE after each change");
  ops.daemon->add_option("--kernel-cmdline", a.kernel_cmdline, "Where to look for graft.enable=0 (/proc/cmdline)");
  a.rescan_s = 0;  // 0: the configuration's
}

std::optional<int> run_ops_subcommand(OpsCommands& ops) {
  if (*ops.store_add) return store_add(ops.args);
  if (*ops.store_remove) return store_remove(ops.args);
  if (*ops.store_list) return store_list(ops.args);
  if (*ops.store_tag) return store_tag(ops.args);
  if (*ops.sync) return sync(ops.args);
  if (*ops.status) return status(ops.args);
  if (*ops.daemon) return daemon(ops.args);
  return std::nullopt;
}

}  // namespace graft::cli
