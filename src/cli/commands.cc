#include "cli/commands.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>

#include "builder/patch_builder.h"
#include "common/error.h"
#include "common/file.h"
#include "loader/operations.h"
#include "loader/process_batch.h"
#include "loader/recovery.h"
#include "loader/runtime_binding.h"
#include "ops/sync.h"
#include "patch/patch.h"
#include "process/proc_status.h"
#include "process/process_lock.h"
#include "security/audit_log.h"
#include "security/policy.h"
#include "security/signing.h"

namespace graft::cli {

using json = nlohmann::json;

namespace {

// Names in a target's record and its /proc/PID/comm are chosen by the
// target: an escape sequence in them must not reach the operator's terminal.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  return out;
}

std::string function_name(const std::string& symbol, const std::string& demangled,
                          const std::string& file) {
  std::string n = printable(demangled.empty() ? symbol : demangled);
  return file.empty() ? n : fmt::format("{} ({})", n, printable(file));
}

// A function's entry thunk for `build --json': what it keeps, or null.
json entry_thunk_json(const FunctionReplacement& f) {
  if (!f.thunk) return nullptr;
  return {{"preserved", arch::register_names(f.thunk->preserved)},
          {"stack_argument_bytes", f.thunk->stack_argument_bytes}};
}

// `apply --all` leaves a process that carries the patch as it is, and says so.
constexpr const char* kAlreadyApplied = "already applied: the process carries this patch; nothing done";
bool already_applied(const OperationResult& r) {
  return r.ok && r.notes.size() == 1 && r.notes.front() == kAlreadyApplied;
}

json result_json(const OperationResult& r) {
  return {{"pid", r.pid},
          {"ok", r.ok},
          {"already_applied", already_applied(r)},
          {"patch_id", r.patch_id},
          {"patch", r.patch_name},
          {"threads", r.threads},
          {"total_ms", r.total_ms},
          {"pause_ms", r.pause_ms},
          {"max_pause_ms", r.max_pause_ms},
          {"retries", r.retries},
          {"run_out", r.run_out},
          {"model", model_name(r.model)},
          {"transition_ms", r.transition_ms},
          {"stalls", r.stalls},
          {"stall_max_us", r.stall_max_us},
          {"stall_p99_us", r.stall_p99_us},
          {"forced", r.forced},
          {"rewound", r.rewound},
          {"returns_rewritten", r.returns_rewritten},
          {"returns_passed", r.returns_passed},
          {"returns_restored", r.returns_restored},
          {"return_to_end_ms", r.return_to_end_ms < 0 ? json(nullptr) : json(r.return_to_end_ms)},
          {"breakpoint_hits", r.breakpoint_hits},
          {"rolled_back", r.rolled_back},
          {"left_in_transition", r.left_in_transition},
          {"recovered", r.recovered},
          {"notes", r.notes},
          {"error", r.ok ? json(nullptr) : json(r.error)},
          {"error_code", r.ok ? json(nullptr) : json(error_code_name(r.error_code))},
          // A failure: whether graft verified the process holds what it
          // held before (null: it could not tell), and what it left if not.
          {"unchanged", r.ok || !r.unchanged ? json(nullptr) : json(*r.unchanged)},
          {"left", r.left.empty() ? json(nullptr) : json(r.left)}};
}

void print_result(const OperationResult& r, const char* verb) {
  for (const auto& a : r.recovered) fmt::print("pid {}: repaired first: {}\n", r.pid, a);
  if (already_applied(r)) {
    fmt::print("pid {}: {} (id {}) already applied; nothing done\n", r.pid, printable(r.patch_name), r.patch_id);
    std::fflush(stdout);
    return;
  }
  if (r.ok && per_thread(r.model))
    fmt::print("pid {}: {} {} (id {}) in {:.1f} ms, model {}: no global pause; {} threads, "
               "transition {:.1f} ms, {} single-thread stops (longest {:.0f} us, p99 {:.0f} us)\n",
               r.pid, verb, printable(r.patch_name), r.patch_id, r.total_ms, r.model, r.threads,
               r.transition_ms, r.stalls, r.stall_max_us, r.stall_p99_us);
  else if (r.ok)
    fmt::print("pid {}: {} {} (id {}) in {:.1f} ms, global pause {:.2f} ms, {} threads, {} "
               "retries{}\n",
               r.pid, verb, printable(r.patch_name), r.patch_id, r.total_ms, r.pause_ms, r.threads, r.retries,
               r.run_out ? fmt::format(", {} threads run out of replaced code", r.run_out) : std::string());
  else if (r.left_in_transition || !r.unchanged)
    fmt::print("pid {}: FAILED: {}\n", r.pid, printable(r.error));
  else if (*r.unchanged)
    fmt::print("pid {}: FAILED: {}; process left unchanged\n", r.pid, printable(r.error));
  else
    fmt::print("pid {}: FAILED: {}; left in the process: {}; `graft recover --pid {}' repairs it\n", r.pid,
               printable(r.error), printable(r.left), r.pid);
  if (r.ok)
    for (const auto& n : r.notes) fmt::print("pid {}: note: {}\n", r.pid, n);
  std::fflush(stdout);
}

int report(const char* command, const std::vector<OperationResult>& results,
           bool as_json, const std::string& patch_name, const std::string& patch_id) {
  bool all_ok = true;
  for (const auto& r : results) all_ok &= r.ok;
  if (as_json) {
    json out = {{"command", command}, {"patch", patch_name}, {"patch_id", patch_id}};
    out["results"] = json::array();
    for (const auto& r : results) out["results"].push_back(result_json(r));
    fmt::print("{}\n", out.dump());
  } else if (results.empty()) {
    fmt::print("no process to {}\n", command);
  }
  return all_ok && !results.empty() ? 0 : kExitFailed;
}

// Runs `operation` on each process, --jobs of them at once, printing a line
// per process (unless the output is JSON) in the order of `pids`, each as
// soon as it and those before it are done.
template <typename Operation>
std::vector<OperationResult> for_each_process(const std::vector<pid_t>& pids, const TargetArgs& t,
                                              const char* verb, Operation operation) {
  OperationOptions options;
  options.timeout_s = t.timeout_s;
  options.force = t.force;
  options.report_after_s = t.report_after_s;
  options.model = t.model;
  // From several threads at once: one whole line each.
  auto progress_lock = std::make_shared<std::mutex>();
  options.progress = [progress_lock](const std::string& line) {
    std::string text = fmt::format("graft: {}\n", line);
    std::lock_guard lock(*progress_lock);
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
  };
  return run_process_batch(
      pids, t.jobs, [&](pid_t pid) { return operation(pid, options); },
      [&](const OperationResult& r) {
        if (!t.json) print_result(r, verb);
      });
}

}  // namespace

int build(const BuildArgs& args) {
  SourceBuild b;
  b.source = args.source;
  b.target_path = args.target;
  b.compiler_flags = args.compiler_flags;
  b.name = args.name.empty() ? std::filesystem::path(args.output).stem().string() : args.name;
  Patch patch = build_patch_from_source(b);
  patch.cumulative |= args.replace;
  Bytes file = serialize_patch(patch);
  write_file(args.output, file);
  Patch written = parse_patch(file, args.output);
  if (args.json) {
    json fns = json::array();
    for (const auto& f : patch.functions)
      fns.push_back({{"symbol", f.symbol}, {"demangled", f.demangled}, {"file", f.file},
                     {"size", f.size}, {"replacement", f.replacement},
                     {"entry_thunk", entry_thunk_json(f)}});
    json cbs = json::array();
    for (const auto& c : patch.callbacks)
      cbs.push_back({{"kind", callback_kind_name(c.kind)}, {"function", c.function}});
    json libs = json::array();
    for (const auto& e : patch.externals)
      if (e.where == ExternalSymbol::Where::Library) libs.push_back(e.name);
    fmt::print("{}\n", json{{"command", "build"},
                            {"ok", true},
                            {"output", args.output},
                            {"name", written.name},
                            {"id", written.id()},
                            {"target", args.target},
                            {"build_id", patch.target.build_id},
                            {"cumulative", patch.cumulative},
                            {"functions", fns},
                            {"callbacks", cbs},
                            {"library_references", libs},
                            {"notes", patch.notes},
                            {"warnings", patch.warnings}}
                           .dump());
    return 0;
  }
  fmt::print("built {} (id {}) for {} (build-id {}):\n", args.output, written.id(), args.target,
             patch.target.build_id.substr(0, 16));
  for (const auto& f : patch.functions)
    fmt::print("  replaces {} ({} bytes) with {}\n", function_name(f.symbol, f.demangled, f.file),
               f.size, f.replacement);
  for (const auto& c : patch.callbacks)
    fmt::print("  {} callback: {}\n", callback_kind_name(c.kind), c.function);
  for (const auto& n : patch.notes) fmt::print("  note: {}\n", n);
  if (patch.cumulative)
    fmt::print("  cumulative: applying it replaces every earlier patch of {}\n", args.target);
  for (const auto& e : patch.externals)
    if (e.where == ExternalSymbol::Where::Library && is_runtime_function(e.name))
      fmt::print("  note: `{}' comes from graft's runtime (the process's libgraft-rt, or graft "
                 "injects it)\n",
                 e.name);
    else if (e.where == ExternalSymbol::Where::Library)
      fmt::print("  note: `{}' is not defined in {}; it must come from a library loaded in the "
                 "process\n",
                 e.name, args.target);
  for (const auto& w : patch.warnings) fmt::print(stderr, "graft: warning: {}\n", w);
  return 0;
}

// What a patch's signature is worth: "unsigned", "valid", "INVALID", and
// whether the policy trusts the key.
json signature_json(const Patch& p, const Policy& policy) {
  if (!p.signature) return nullptr;
  PublicKey k{p.signature->public_key, p.signature->signer};
  bool trusted = false;
  for (const auto& t : policy.trusted_keys) trusted |= t.key == k.key;
  return {{"signer", k.name}, {"key_id", k.id()}, {"valid", signature_valid(p)}, {"trusted", trusted}};
}

int info(const InfoArgs& args) {
  const std::string& path = args.patch_file;
  bool as_json = args.json;
  Patch p = load_patch_file(path);
  Policy policy = load_policy(args.policy);
  json sig = signature_json(p, policy);
  auto verdict = refusal(policy, p);
  if (as_json) {
    json fns = json::array();
    for (const auto& f : p.functions)
      fns.push_back({{"symbol", f.symbol}, {"demangled", f.demangled}, {"file", f.file},
                     {"address", f.address}, {"size", f.size}, {"sha256", f.sha256},
                     {"replacement", f.replacement}});
    json ext = json::array();
    for (const auto& e : p.externals)
      ext.push_back({{"name", e.name},
                     {"where", e.where == ExternalSymbol::Where::Target ? "target" : "library"},
                     {"file", e.file}});
    json cbs = json::array();
    for (const auto& c : p.callbacks)
      cbs.push_back({{"kind", callback_kind_name(c.kind)}, {"function", c.function}});
    fmt::print("{}\n", json{{"name", p.name},
                            {"cumulative", p.cumulative},
                            {"callbacks", cbs},
                            {"id", p.id()},
                            {"sha256", p.sha256},
                            {"target", {{"path", p.target.path}, {"build_id", p.target.build_id}}},
                            {"image_size", p.layout.memory_size()},
                            {"relocations", p.relocations.size()},
                            {"functions", fns},
                            {"externals", ext},
                            {"signature", sig},
                            {"policy", policy.source.empty() ? json(nullptr) : json(policy.source)},
                            {"policy_refusal", verdict ? json(*verdict) : json(nullptr)}}
                           .dump());
    return 0;
  }
  fmt::print("patch     {}\nid        {}\nsha256    {}\ntarget    {} ({})\n", p.name, p.id(),
             p.sha256, p.target.path, p.target.position_independent ? "PIE or shared library" : "non-PIE executable");
  fmt::print("build-id  {}\nimage     {} bytes code, {} rodata, {} data, {} bss; {} relocations\n",
             p.target.build_id, p.layout.code_size, p.layout.rodata_size, p.layout.data_size,
             p.layout.bss_size, p.relocations.size());
  if (sig.is_null())
    fmt::print("signature none (unsigned)\n");
  else
    fmt::print("signature {} (key {}): {}{}\n", printable(sig["signer"].get<std::string>()),
               sig["key_id"].get<std::string>(), sig["valid"].get<bool>() ? "valid" : "INVALID",
               sig["valid"].get<bool>() ? (sig["trusted"].get<bool>() ? ", trusted by the policy"
                                                                        : ", key not in the policy")
                                        : "");
  if (verdict) fmt::print("policy    {} refuses it: {}\n", policy.source, *verdict);
  fmt::print("functions\n");
  for (const auto& f : p.functions)
    fmt::print("  {} at {:#x}, {} bytes, sha256 {}... -> {}\n",
               function_name(f.symbol, f.demangled, f.file), f.address, f.size,
               f.sha256.substr(0, 16), f.replacement);
  if (!p.callbacks.empty()) {
    fmt::print("callbacks\n");
    for (const auto& c : p.callbacks) fmt::print("  {} {}\n", callback_kind_name(c.kind), c.function);
  }
  if (p.cumulative) fmt::print("cumulative (replaces every earlier patch of its target)\n");
  if (!p.externals.empty()) {
    fmt::print("references\n");
    for (const auto& e : p.externals)
      fmt::print("  {} ({})\n", e.name,
                 e.where == ExternalSymbol::Where::Target
                     ? (e.file.empty() ? std::string("target") : "target, static in " + e.file)
                     : is_runtime_function(e.name) ? std::string("graft runtime")
                                                   : std::string("loaded library"));
  }
  return 0;
}

// The audit event of one process's result.
AuditEvent event_of(const char* action, const OperationResult& r) {
  AuditEvent e;
  e.action = action;
  e.result = r.ok ? "ok" : "failed";
  e.pid = r.pid;
  e.patch_name = r.patch_name;
  e.patch_id = r.patch_id;
  e.patch_sha256 = r.patch_sha256;
  e.reason = r.error;
  return e;
}

int apply(const std::string& patch_file, const TargetArgs& t) {
  Policy policy = load_policy(t.policy);
  AuditLog audit(policy);
  AuditEvent refused;
  refused.action = "apply";
  refused.result = "refused";
  refused.pid = t.all ? 0 : t.pid;
  refused.patch_file = patch_file;
  Patch patch;
  try {
    patch = load_patch_file(patch_file);
  } catch (const Error& e) {
    // A damaged or malicious file: logged with the hash of what was read.
    try {
      refused.patch_sha256 = sha256_hex(read_file(patch_file, size_t(1) << 30));
    } catch (const Error&) {
    }
    refused.reason = e.what();
    audit.record(refused);
    throw Error(e.what(), ErrorCode::bad_input);
  }
  refused.patch_name = patch.name;
  refused.patch_id = patch.id();
  refused.patch_sha256 = patch.sha256;
  refused.signer = signer_of(patch);
  if (auto why = refusal(policy, patch)) {
    refused.reason = *why;
    audit.record(refused);
    if (t.json)
      fmt::print("{}\n", json{{"command", "apply"}, {"patch", patch.name}, {"patch_id", patch.id()},
                              {"ok", false}, {"refused", *why}, {"error", *why},
                              {"error_code", error_code_name(ErrorCode::refused_by_policy)},
                              {"results", json::array()}}
                             .dump());
    else
      fmt::print(stderr, "graft: refused by policy: {}\n", *why);
    return kExitRefused;
  }
  std::vector<pid_t> pids = t.all ? processes_mapping(patch.target.build_id) : std::vector<pid_t>{t.pid};
  auto results = for_each_process(pids, t, "applied", [&](pid_t pid, OperationOptions o) {
    if (t.all && ops::carries_patch(pid, patch.sha256)) {
      OperationResult r;
      r.pid = pid;
      r.ok = true;
      r.patch_id = patch.id();
      r.patch_name = patch.name;
      r.model = t.model.value_or(kDefaultModel);
      r.notes.push_back(kAlreadyApplied);
      return r;
    }
    OperationResult r = apply_patch(patch, pid, o);
    AuditEvent e = event_of("apply", r);
    e.patch_file = patch_file;
    e.signer = refused.signer;
    audit.record(e);
    return r;
  });
  return report("apply", results, t.json, patch.name, patch.id());
}

int revert(const std::string& which, const TargetArgs& t) {
  Policy policy = load_policy(t.policy);
  AuditLog audit(policy);
  std::vector<pid_t> pids;
  if (t.all) {
    // A name is not unique across processes: `--all' by name acts only if
    // it names one patch (one id) everywhere.
    std::set<std::string> ids;
    for (pid_t pid : processes_with_patches()) {
      try {
        for (const auto& r : list_patches(pid).patches)
          if (r.matches(which)) {
            pids.push_back(pid);
            ids.insert(r.id);
            break;
          }
      } catch (const Error&) {
      }
    }
    if (ids.size() > 1)
      throw Error(fmt::format("`{}' names {} different patches in different processes (ids {}); "
                              "revert --all needs one: give its id",
                              printable(which), ids.size(), fmt::join(ids, ", ")));
  } else {
    pids.push_back(t.pid);
  }
  auto results = for_each_process(pids, t, "reverted", [&](pid_t pid, OperationOptions o) {
    OperationResult r = revert_patch(which, pid, o);
    AuditEvent e = event_of("revert", r);
    if (e.patch_name.empty()) e.patch_name = which;
    audit.record(e);
    return r;
  });
  std::string id = results.empty() ? "" : results.front().patch_id;
  return report("revert", results, t.json, results.empty() ? which : results.front().patch_name, id);
}

int keygen(const KeygenArgs& args) {
  const std::string& prefix = args.prefix;
  std::string n = args.name.empty() ? std::filesystem::path(prefix).filename().string() : args.name;
  PublicKey k = generate_key_pair(prefix, n);
  if (args.json) {
    fmt::print("{}\n", json{{"command", "keygen"}, {"ok", true}, {"secret_key", prefix + ".key"},
                            {"public_key", prefix + ".pub"}, {"signer", k.name}, {"key_id", k.id()}}
                           .dump());
    return 0;
  }
  fmt::print("wrote {}.key (secret: keep it private) and {}.pub for signer {} (key {})\n", prefix,
             prefix, k.name, k.id());
  return 0;
}

namespace {

// A kernel livepatch module (graft build --kernel) is signed the same way.
int sign_module(const SignArgs& args, const SecretKey& key, const Bytes& file) {
  Bytes signed_file = sign_module_file(file, args.patch_file, key);
  std::string out = args.output.empty() ? args.patch_file : args.output;
  write_file(out, signed_file);
  SignedModule m = parse_signed_module(signed_file, out);
  if (!module_signature_valid(m)) fail("{}: the new signature does not verify", out);
  if (args.json) {
    fmt::print("{}\n", json{{"command", "sign"}, {"ok", true}, {"output", out}, {"kernel_module", true},
                            {"sha256", m.sha256}, {"signer", signer_of(m.signature)}}
                           .dump());
    return 0;
  }
  fmt::print("signed kernel module {} as {}\n", out, signer_of(m.signature));
  return 0;
}

}  // namespace

int sign(const SignArgs& args) {
  const std::string& patch_file = args.patch_file;
  const std::string& output = args.output;
  SecretKey key = load_secret_key(args.key_file);
  Bytes file = read_file(patch_file, size_t(1) << 30);
  if (file.size() >= 4 && std::equal(file.begin(), file.begin() + 4, "\x7f" "ELF")) return sign_module(args, key, file);
  Bytes signed_file = sign_patch_file(file, patch_file, key);
  std::string out = output.empty() ? patch_file : output;
  write_file(out, signed_file);
  Patch p = parse_patch(signed_file, out);
  if (!signature_valid(p)) fail("{}: the new signature does not verify", out);
  if (args.json) {
    fmt::print("{}\n", json{{"command", "sign"}, {"ok", true}, {"output", out}, {"id", p.id()},
                            {"signer", signer_of(p)}}
                           .dump());
    return 0;
  }
  fmt::print("signed {} (id {}) as {}\n", out, p.id(), signer_of(p));
  return 0;
}

// The exit status says whether the processes asked about are sound: with
// --pid, 1 if that process cannot be read or holds a record graft cannot
// read; without, 0 once the list is printed (a process that exits, or that
// the caller may not read, is left out; problems are printed as warnings),
// so that it never depends on unrelated processes.
int list(const ListArgs& args) {
  pid_t pid = args.pid;
  bool as_json = args.json;
  std::vector<pid_t> pids = pid ? std::vector<pid_t>{pid} : processes_with_patches();
  json procs = json::array();
  bool problems = false;
  for (pid_t p : pids) {
    ProcessPatches pp;
    try {
      pp = list_patches(p);
    } catch (const Error& e) {
      if (!pid) continue;  // exited while we looked, or not ours to read
      if (as_json)
        fmt::print("{}\n", json{{"command", "list"}, {"ok", false}, {"pid", p}, {"error", e.what()},
                                {"error_code", error_code_name(e.code())}, {"processes", json::array()}}
                               .dump());
      else
        fmt::print("pid {}: FAILED: {}\n", p, printable(e.what()));
      return kExitFailed;
    }
    problems |= pid && !pp.problems.empty();
    if (as_json) {
      json patches = json::array();
      for (const auto& r : pp.patches) {
        json fns = json::array();
        for (const auto& f : r.functions)
          fns.push_back({{"symbol", f.symbol},
                         {"name", function_name(f.symbol, f.demangled, f.file)},
                         {"address", fmt::format("{:#x}", f.address)},
                         {"replacement", fmt::format("{:#x}", f.replacement)},
                         {"restores", f.restores}});
        json cbs = json::array();
        for (const auto& c : r.callbacks)
          cbs.push_back({{"kind", callback_kind_name(c.kind)}, {"function", c.function}});
        json transition = nullptr;
        if (auto t = pp.transitions.find(r.id); t != pp.transitions.end()) {
          const TransitionStatus& st = t->second;
          json pending = json::array();
          for (const auto& [tid, why] : st.pending) pending.push_back({{"tid", tid}, {"holding", why}});
          transition = {{"valid", st.valid},          {"problem", st.problem},
                        {"driver_pid", st.driver_pid}, {"driver_alive", st.driver_alive},
                        {"revert_requested", st.revert_requested},
                        {"threads", st.threads_total}, {"moved", st.threads_moved},
                        {"pending", pending}};
        }
        size_t i = patches.size();
        patches.push_back({{"id", r.id}, {"name", r.name}, {"seq", r.seq}, {"model", model_name(r.model)},
                           {"transition", transition},
                           {"state", state_name(r.state)}, {"redirected", pp.redirected[i]},
                           {"interrupted", r.state != RecordState::Active && !pp.traced},
                           {"target", r.target_path},
                           {"applied_at", r.applied_at}, {"cumulative", r.cumulative},
                           {"callbacks", cbs}, {"functions", fns}});
      }
      json runtime = nullptr;
      if (pp.runtime)
        runtime = {{"address", fmt::format("{:#x}", pp.runtime->region_start)},
                   {"size", pp.runtime->region_size},
                   {"installed_at", pp.runtime->installed_at}};
      procs.push_back({{"pid", p}, {"command", pp.command}, {"patches", patches},
                       {"runtime", runtime}, {"problems", pp.problems}});
      continue;
    }
    if (pp.runtime)
      fmt::print("pid {} ({}): graft runtime at {:#x} (injected; holds the shadow variables)\n", p,
                 printable(pp.command), pp.runtime->region_start);
    if (pp.patches.empty() && pp.problems.empty()) {
      fmt::print("pid {} ({}): no patches\n", p, printable(pp.command));
      continue;
    }
    for (size_t i = 0; i < pp.patches.size(); ++i) {
      const auto& r = pp.patches[i];
      std::string state = state_name(r.state);
      if (r.state != RecordState::Active)
        state += fmt::format(" ({} of {} entries redirected; {})", pp.redirected[i], r.functions.size(),
                             pp.traced ? "in progress" : "interrupted: `graft recover' repairs it");
      fmt::print("pid {} ({}): {} (id {}) #{} {}{}, target {}\n", p, printable(pp.command),
                 printable(r.name), r.id, r.seq, state, r.cumulative ? ", cumulative" : "",
                 printable(r.target_path));
      for (const auto& f : r.functions)
        fmt::print("    {} at {:#x} -> {}\n", function_name(f.symbol, f.demangled, f.file), f.address,
                   f.restores ? std::string("its original code (put back)") : fmt::format("{:#x}", f.replacement));
      if (auto t = pp.transitions.find(r.id); t != pp.transitions.end()) {
        const TransitionStatus& st = t->second;
        if (!st.valid) {
          fmt::print("    transition: {}\n", st.problem);
        } else {
          fmt::print("    transition ({} model, driven by graft pid {}{}): {}/{} threads moved{}\n", r.model,
                     st.driver_pid, st.driver_alive ? "" : ", gone", st.threads_moved, st.threads_total,
                     st.pending.empty() ? "" : "; pending:");
          for (const auto& [tid, why] : st.pending) fmt::print("      thread {}: {}\n", tid, printable(why));
        }
      }
    }
    for (const auto& problem : pp.problems) fmt::print("pid {}: WARNING: {}\n", p, printable(problem));
  }
  if (as_json) fmt::print("{}\n", json{{"command", "list"}, {"ok", !problems}, {"processes", procs}}.dump());
  else if (pids.empty()) fmt::print("no process has graft patches\n");
  return problems ? kExitFailed : 0;
}

int recover(const TargetArgs& t) {
  std::vector<pid_t> pids = t.all ? processes_needing_recovery() : std::vector<pid_t>{t.pid};
  OperationOptions options;
  options.timeout_s = t.timeout_s;
  Policy policy = load_policy(t.policy);
  AuditLog audit(policy);
  json out = json::array();
  bool all_ok = true;
  std::vector<RecoveryResult> results(pids.size());
  std::vector<ErrorCode> codes(pids.size(), ErrorCode::failed);
  // Processes side by side (--jobs), reported in pid order as they finish.
  run_bounded(
      pids.size(), t.jobs,
      [&](size_t i) {
        try {
          check_process_changeable(pids[i]);
          // apply and revert recover under this lock too.
          ProcessLock lock(pids[i], options.timeout_s);
          results[i] = recover_process(pids[i], options);
        } catch (const Error& e) {
          results[i].ok = false;
          results[i].error = e.what();
          codes[i] = e.code();
        } catch (const std::exception& e) {
          results[i].ok = false;
          results[i].error = e.what();
        }
      },
      [&](size_t i) {
        pid_t pid = pids[i];
        const RecoveryResult& r = results[i];
        AuditEvent e;
        e.action = "recover";
        e.result = r.ok ? "ok" : "failed";
        e.pid = pid;
        e.reason = r.ok ? fmt::format("{}", fmt::join(r.actions, "; ")) : r.error;
        audit.record(e);
        all_ok &= r.ok;
        if (t.json) {
          out.push_back({{"pid", pid}, {"ok", r.ok}, {"actions", r.actions},
                         {"error", r.ok ? json(nullptr) : json(r.error)},
                         {"error_code", r.ok ? json(nullptr) : json(error_code_name(codes[i]))}});
          return;
        }
        if (!r.ok)
          fmt::print("pid {}: FAILED: {}\n", pid, printable(r.error));
        else if (r.actions.empty())
          fmt::print("pid {}: nothing to repair\n", pid);
        for (const auto& a : r.actions) fmt::print("pid {}: {}\n", pid, a);
        std::fflush(stdout);
      });
  if (t.json)
    fmt::print("{}\n", json{{"command", "recover"}, {"results", out}}.dump());
  else if (pids.empty())
    fmt::print("no process needs repair\n");
  return all_ok ? 0 : kExitFailed;
}

void print_error(const std::string& command, bool as_json, const std::string& message,
                 std::string_view error_code) {
  if (as_json) {
    fmt::print("{}\n", json{{"command", command}, {"ok", false}, {"error", message},
                            {"error_code", error_code}, {"results", json::array()}}
                           .dump());
    std::fflush(stdout);
  } else {
    fmt::print(stderr, "graft: error: {}\n", message);
  }
}

}  // namespace graft::cli
