#include "cli/kernel_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "kernel/kernel_build.h"
#include "kernel/kernel_diff_build.h"
#include "kernel/kernel_transition.h"
#include "kernel/livepatch_module.h"
#include "kernel/livepatch_sysfs.h"
#include "kernel/manifest.h"
#include "kernel/run_pre_check.h"
#include "security/audit_log.h"
#include "security/policy.h"

namespace graft::cli {

using nlohmann::json;
using namespace graft::kernel;

namespace {

json pending_json(const std::vector<PendingTask>& tasks) {
  json out = json::array();
  for (const auto& t : tasks)
    out.push_back({{"pid", t.pid}, {"tid", t.tid}, {"comm", t.comm}, {"patch_state", t.patch_state}, {"stack", t.stack}});
  return out;
}

void print_pending(const char* what, const std::vector<PendingTask>& tasks) {
  std::fprintf(stderr, "%s: %zu task(s) not yet switched:\n", what, tasks.size());
  for (const auto& t : tasks) {
    std::fprintf(stderr, "  pid %d tid %d (%s)\n", t.pid, t.tid, t.comm.c_str());
    for (const auto& frame : t.stack) std::fprintf(stderr, "      %s\n", frame.c_str());
  }
}

// Prints the transition's events (text mode) and returns its result.
TransitionResult transition(const LivepatchSysfs& sysfs, const std::string& name, bool patching,
                            const KernelTransitionArgs& a) {
  TransitionOptions o{a.timeout_s, a.report_after_s, a.force};
  const char* verb = patching ? "patching" : "unpatching";
  return follow_transition(sysfs, name, patching, o, [&](const TransitionEvent& e) {
    if (a.json && e.kind != TransitionEvent::Kind::Forcing) return;
    switch (e.kind) {
      case TransitionEvent::Kind::Progress:
        std::fprintf(stderr, "%s %s: %.1f s, %zu task(s) pending\n", name.c_str(), verb, e.elapsed_s, e.pending.size());
        break;
      case TransitionEvent::Kind::Pending:
        print_pending(fmt::format("{} {} after {:.1f} s", name, verb, e.elapsed_s).c_str(), e.pending);
        break;
      case TransitionEvent::Kind::Forcing:
        std::fprintf(stderr,
                     "graft: warning: forcing the transition of %s: %zu task(s) are switched without "
                     "checking their stacks, which may run old and new code together; the module of a "
                     "forced patch can never be unloaded\n",
                     name.c_str(), e.pending.size());
        break;
      case TransitionEvent::Kind::Reversing:
        print_pending(fmt::format("{} timed out after {:.1f} s; reversing the transition", name, e.elapsed_s).c_str(),
                      e.pending);
        break;
    }
  });
}

// A disabled patch is freed asynchronously after its transition; its
// module cannot go before that. Retries for --timeout, at least 5 s.
bool unload_module_when_free(const std::string& name, const KernelTransitionArgs& a, std::string* why) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(5.0, a.timeout_s));
  for (;;) {
    if (unload_module(name, why)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

json transition_json(const TransitionResult& r) {
  return {{"outcome", outcome_name(r.outcome)}, {"seconds", r.seconds}, {"pending_at_report", pending_json(r.pending_at_report)}};
}

}  // namespace

static int kernel_build_from_diff(const KernelBuildArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  KernelDiffOptions o;
  o.diff = a.diff;
  o.source = a.source_dir;
  o.config = a.config;
  o.output = a.output;
  o.name = a.name;
  o.release = a.release;
  o.replace = a.replace;
  o.keep_work = a.keep_work;
  KernelDiffResult r = build_kernel_patch_from_diff(o, [&](const std::string& line) {
    if (!a.json) std::fprintf(stderr, "graft: %s\n", line.c_str());
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const KernelPatchManifest& m = r.build.manifest;
  if (a.json) {
    json fns = json::array();
    for (const auto& f : r.functions)
      fns.push_back({{"name", f.name}, {"object", f.object.empty() ? "vmlinux" : f.object}, {"sympos", f.sympos},
                     {"source", f.source}, {"reason", f.reason},
                     {"detail", f.detail}});
    json j = {{"module", r.build.module_path}, {"name", m.name}, {"release", m.release}, {"replace", m.replace},
              {"functions", fns}, {"livepatch_symbols", m.livepatch_symbols},
              {"livepatch_relocations", r.build.conversion.relocations_moved}, {"carried", r.carried},
              {"module_objects", m.module_files},
              {"notes", r.notes}, {"tree_cached", r.tree_cached}, {"prepare_seconds", r.prepare_seconds},
              {"compile_seconds", r.compile_seconds}, {"seconds", seconds}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("built %s: livepatch %s for %s from %s, %zu function(s), %zu livepatch symbol(s)%s (%.1f s; tree %s)\n",
              r.build.module_path.c_str(), m.name.c_str(), m.release.c_str(), a.diff.c_str(), m.functions.size(),
              m.livepatch_symbols.size(), m.replace ? ", cumulative" : "", seconds,
              r.tree_cached ? "cached" : fmt::format("prepared in {:.0f} s", r.prepare_seconds).c_str());
  for (const auto& f : r.functions) {
    std::string pos = f.sympos ? fmt::format(",{}", f.sympos) : "";
    std::printf("  %s%s (%s): %s%s\n", f.name.c_str(), pos.c_str(), f.source.c_str(), f.reason.c_str(),
                f.detail.empty() ? "" : (" (" + f.detail + ")").c_str());
  }
  for (const auto& [module, file] : m.module_files)
    std::printf("  object %s (%s): livepatch patches it when it loads, at once if it is loaded\n", module.c_str(),
                file.c_str());
  for (const auto& [section, n] : r.carried) std::printf("  carried %zu entr%s of %s\n", n, n == 1 ? "y" : "ies", section.c_str());
  for (const auto& n : r.notes) std::printf("  note: %s\n", n.c_str());
  return 0;
}

int kernel_build(const KernelBuildArgs& a) {
  if (a.release.empty()) throw Error("build --kernel needs --kernel-release RELEASE (uname -r of the target)");
  if (a.source.empty() == a.diff.empty())
    throw Error("build --kernel needs --from-source FILE.c or --from-diff FIX.patch --source DIR");
  if (a.output.empty()) throw Error("build --kernel needs -o NAME.ko");
  if (!a.diff.empty()) return kernel_build_from_diff(a);
  auto t0 = std::chrono::steady_clock::now();
  KernelBuildOptions o{a.source, a.output, a.name, a.release, {}, a.replace, a.keep_work};
  KernelBuildResult r = build_kernel_patch(o, [&](const std::string& line) {
    if (!a.json) std::fprintf(stderr, "graft: %s\n", line.c_str());
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (a.json) {
    json fns = json::array();
    for (const auto& f : r.manifest.functions)
      fns.push_back({{"name", f.name}, {"sympos", f.sympos}, {"address", f.address}, {"size", f.size}});
    json j = {{"module", r.module_path}, {"name", r.manifest.name}, {"release", r.manifest.release},
              {"replace", r.manifest.replace}, {"functions", fns}, {"livepatch_symbols", r.manifest.livepatch_symbols},
              {"livepatch_relocations", r.conversion.relocations_moved}, {"seconds", seconds}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("built %s: livepatch %s for %s, %zu function(s), %zu livepatch symbol(s)%s (%.1f s)\n",
                r.module_path.c_str(), r.manifest.name.c_str(), r.manifest.release.c_str(),
                r.manifest.functions.size(), r.manifest.livepatch_symbols.size(),
                r.manifest.replace ? ", cumulative" : "", seconds);
  }
  return 0;
}

namespace {

int apply_module(const ModuleImage& image, const KernelPatchManifest& m, const KernelTransitionArgs& a,
                 std::string* outcome);

}  // namespace

// Kernel patches go to the same audit log, under the same signature policy
// (graft sign NAME.ko), as process patches (pid 0: the kernel).
int kernel_apply(const std::string& module, const KernelTransitionArgs& a) {
  Policy policy = load_policy(a.policy);
  AuditLog audit(policy);
  AuditEvent e;
  e.action = "apply";
  e.patch_file = module;
  try {
    Bytes file = read_file(module, size_t(64) << 20);
    SignedModule signed_module = parse_signed_module(file, module);
    e.patch_sha256 = signed_module.sha256;
    e.signer = signer_of(signed_module.signature);
    // Judged before anything else reads the module's contents.
    if (auto why = refusal(policy, signed_module, module)) {
      e.result = "refused";
      e.reason = *why;
      audit.record(e);
      if (a.json)
        std::printf("%s\n", json{{"command", "apply"}, {"patch_file", module}, {"ok", false}, {"refused", *why},
                                  {"error", *why}, {"error_code", error_code_name(ErrorCode::refused_by_policy)}}
                                 .dump()
                                 .c_str());
      else
        std::fprintf(stderr, "graft: refused by policy: %s\n", why->c_str());
      return kExitRefused;
    }
    ModuleImage image(signed_module.module, module);
    KernelPatchManifest m = read_module_manifest(image.proc_path(), module);
    e.patch_name = "kernel:" + m.name;
    std::string outcome;
    int rc = apply_module(image, m, a, &outcome);
    e.result = rc == 0 ? "ok" : "failed";
    e.reason = "transition " + outcome;
    audit.record(e);
    return rc;
  } catch (const std::exception& ex) {
    e.result = "failed";
    e.reason = ex.what();
    audit.record(e);
    throw;
  }
}

namespace {

int apply_module(const ModuleImage& image, const KernelPatchManifest& m, const KernelTransitionArgs& a,
                 std::string* outcome) {
  LivepatchSysfs sysfs;
  if (!sysfs.available()) throw Error("this kernel has no livepatch support (/sys/kernel/livepatch is missing)");
  if (sysfs.read(m.name)) throw Error(fmt::format("patch {} is already applied (graft revert --kernel {})", m.name, m.name));
  RunPreReport pre = run_pre_check(m, RunningKernel::current());
  if (!a.json)
    for (const auto& f : pre.functions) {
      if (f.checked == "not loaded")
        std::fprintf(stderr, "run-pre check: %s: module %s is not loaded and has no file here: livepatch patches it "
                     "when it loads, unchecked\n", f.name.c_str(), f.object.c_str());
      else if (f.checked == "module file")
        std::fprintf(stderr, "run-pre check: %s: module %s is not loaded; its file matches (%zu bytes); livepatch "
                     "patches it when it loads\n", f.name.c_str(), f.object.c_str(), f.bytes_compared);
      else
        std::fprintf(stderr,
                     "run-pre check: %s%s at %#lx matches the %s (%zu bytes compared, %zu rewritten at boot or "
                     "load, %zu relocated addresses)\n",
                     f.name.c_str(), f.object.empty() ? "" : (" [" + f.object + "]").c_str(), (unsigned long)f.address,
                     f.object.empty() ? "image" : "shipped module", f.bytes_compared, f.bytes_masked,
                     f.relocated_fields);
    }
  auto before = sysfs.names();
  load_module(image, m.name);
  if (!a.json) std::fprintf(stderr, "loaded %s; patching\n", m.name.c_str());
  TransitionResult r = transition(sysfs, m.name, true, a);
  std::vector<std::string> replaced, kept_loaded;
  if (r.outcome == TransitionOutcome::Completed || r.outcome == TransitionOutcome::Forced) {
    if (m.replace) {
      // Atomic replace disables the patches it replaced and frees them
      // asynchronously; their modules stay loaded until removed.
      for (auto& n : before) {
        auto s = sysfs.read(n);
        if (s && s->enabled) continue;
        replaced.push_back(n);
        std::string why;
        if (!unload_module_when_free(n, a, &why)) kept_loaded.push_back(n + ": " + why);
      }
    }
  } else {
    std::string why;
    if (r.outcome == TransitionOutcome::Reversed && !unload_module_when_free(m.name, a, &why))
      kept_loaded.push_back(m.name + ": " + why);
  }
  if (a.json) {
    json fns = json::array();
    for (const auto& f : pre.functions)
      fns.push_back({{"object", f.object.empty() ? "vmlinux" : f.object}, {"name", f.name}, {"address", f.address},
                     {"checked", f.checked}, {"bytes_compared", f.bytes_compared}});
    json j = {{"name", m.name}, {"release", m.release}, {"kaslr_offset", pre.kaslr_offset}, {"functions", fns},
              {"transition", transition_json(r)}, {"replaced", replaced}, {"not_unloaded", kept_loaded}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  for (auto& k : kept_loaded) std::fprintf(stderr, "graft: warning: module not unloaded: %s\n", k.c_str());
  *outcome = outcome_name(r.outcome);
  switch (r.outcome) {
    case TransitionOutcome::Completed:
    case TransitionOutcome::Forced:
      if (!a.json) {
        std::printf("applied %s to kernel %s: %zu function(s), transition %s in %.2f s\n", m.name.c_str(),
                    m.release.c_str(), m.functions.size(), outcome_name(r.outcome), r.seconds);
        for (auto& n : replaced) std::printf("replaced %s\n", n.c_str());
      }
      return 0;
    case TransitionOutcome::Reversed:
      if (!a.json)
        std::printf("not applied: %s did not complete its transition within %.0f s and was reversed\n",
                    m.name.c_str(), a.timeout_s);
      return kExitTransitionReversed;
    case TransitionOutcome::ReverseIncomplete:
      throw Error(fmt::format("patch {}: the transition and its reversal both timed out; it is still in "
                              "transition (see /sys/kernel/livepatch/{})",
                              m.name, m.name));
  }
  return 2;
}

int revert_patch(const std::string& name, const KernelTransitionArgs& a, std::string* outcome);

}  // namespace

int kernel_revert(const std::string& name, const KernelTransitionArgs& a) {
  Policy policy = load_policy(a.policy);
  AuditLog audit(policy);
  AuditEvent e;
  e.action = "revert";
  e.patch_name = "kernel:" + name;
  try {
    std::string outcome;
    int rc = revert_patch(name, a, &outcome);
    e.result = rc == 0 ? "ok" : "failed";
    e.reason = "transition " + outcome;
    audit.record(e);
    return rc;
  } catch (const std::exception& ex) {
    e.result = "failed";
    e.reason = ex.what();
    audit.record(e);
    throw;
  }
}

namespace {

int revert_patch(const std::string& name, const KernelTransitionArgs& a, std::string* outcome) {
  if (!valid_livepatch_name(name)) throw Error(fmt::format("'{}' is not a livepatch name", name));
  LivepatchSysfs sysfs;
  auto s = sysfs.read(name);
  if (!s) throw Error(fmt::format("no kernel patch {} is applied (graft list --kernel)", name));
  if (s->in_transition)
    throw Error(fmt::format("patch {} is in transition; wait for it to end", name));
  TransitionResult r;
  if (s->enabled) {
    sysfs.set_enabled(name, false);
    if (!a.json) std::fprintf(stderr, "disabling %s; unpatching\n", name.c_str());
    r = transition(sysfs, name, false, a);
  }
  std::string why;
  bool unloaded = false;
  if (r.outcome == TransitionOutcome::Completed || r.outcome == TransitionOutcome::Forced)
    unloaded = unload_module_when_free(name, a, &why);
  if (a.json) {
    json j = {{"name", name}, {"transition", transition_json(r)}, {"unloaded", unloaded}};
    if (!unloaded) j["not_unloaded"] = why;
    std::printf("%s\n", j.dump(2).c_str());
  }
  *outcome = outcome_name(r.outcome);
  if (r.outcome == TransitionOutcome::Reversed) {
    if (!a.json) std::printf("not reverted: %s stays applied (the unpatching transition was reversed)\n", name.c_str());
    return kExitTransitionReversed;
  }
  if (r.outcome == TransitionOutcome::ReverseIncomplete)
    throw Error(fmt::format("patch {}: unpatching and its reversal both timed out", name));
  if (!a.json) {
    std::printf("reverted %s in %.2f s\n", name.c_str(), r.seconds);
    if (!unloaded) std::fprintf(stderr, "graft: warning: module %s not unloaded: %s\n", name.c_str(), why.c_str());
  }
  return 0;
}

}  // namespace

int kernel_list(bool json_out) {
  LivepatchSysfs sysfs;
  if (!sysfs.available()) throw Error("this kernel has no livepatch support (/sys/kernel/livepatch is missing)");
  json out = json::array();
  for (const auto& n : sysfs.names()) {
    auto s = sysfs.read(n);
    if (!s) continue;
    json fns = json::array();
    std::string text;
    for (const auto& f : s->functions) {
      fns.push_back({{"object", f.object}, {"function", f.name}, {"sympos", f.sympos}});
      text += (text.empty() ? "" : " ") + f.object + ":" + f.name;
    }
    // A module's object is patched only while the module is loaded.
    json objs = json::array();
    std::string objects;
    for (const auto& o : s->objects) {
      objs.push_back({{"object", o.name}, {"patched", o.patched}});
      objects += fmt::format("{}{}={}", objects.empty() ? "" : " ", o.name,
                             o.patched ? "patched" : o.name == "vmlinux" ? "unpatched" : "not-loaded");
    }
    out.push_back({{"name", s->name}, {"enabled", s->enabled}, {"transition", s->in_transition}, {"objects", objs},
                   {"functions", fns}});
    if (!json_out)
      std::printf("%s %s%s %s [%s]\n", s->name.c_str(), s->enabled ? "enabled" : "disabled",
                  s->in_transition ? " (in transition)" : "", text.c_str(), objects.c_str());
  }
  if (json_out) std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace graft::cli
