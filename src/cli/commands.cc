#include "cli/commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "builder/patch_builder.h"
#include "common/error.h"
#include "common/file.h"
#include "loader/operations.h"
#include "loader/recovery.h"
#include "loader/runtime_binding.h"
#include "patch/patch.h"

namespace graft::cli {

using json = nlohmann::json;

namespace {

std::string function_name(const std::string& symbol, const std::string& demangled,
                          const std::string& file) {
  std::string n = demangled.empty() ? symbol : demangled;
  return file.empty() ? n : fmt::format("{} ({})", n, file);
}

json result_json(const OperationResult& r) {
  return {{"pid", r.pid},
          {"ok", r.ok},
          {"patch_id", r.patch_id},
          {"patch", r.patch_name},
          {"threads", r.threads},
          {"total_ms", r.total_ms},
          {"pause_ms", r.pause_ms},
          {"max_pause_ms", r.max_pause_ms},
          {"retries", r.retries},
          {"recovered", r.recovered},
          {"notes", r.notes},
          {"error", r.ok ? json(nullptr) : json(r.error)}};
}

void print_result(const OperationResult& r, const char* verb) {
  for (const auto& a : r.recovered) fmt::print("pid {}: repaired first: {}\n", r.pid, a);
  if (r.ok)
    fmt::print("pid {}: {} {} (id {}) in {:.1f} ms, global pause {:.2f} ms, {} threads, {} "
               "retries\n",
               r.pid, verb, r.patch_name, r.patch_id, r.total_ms, r.pause_ms, r.threads, r.retries);
  else
    fmt::print("pid {}: FAILED: {}; process left unchanged\n", r.pid, r.error);
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
  return all_ok && !results.empty() ? 0 : 1;
}

// Runs `operation` on each process in turn, printing a line per process as
// it completes (unless the output is JSON).
template <typename Operation>
std::vector<OperationResult> for_each_process(const std::vector<pid_t>& pids, const TargetArgs& t,
                                              const char* verb, Operation operation) {
  OperationOptions options;
  options.timeout_s = t.timeout_s;
  std::vector<OperationResult> results;
  for (pid_t pid : pids) {
    results.push_back(operation(pid, options));
    if (!t.json) print_result(results.back(), verb);
  }
  return results;
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
  fmt::print("built {} (id {}) for {} (build-id {}):\n", args.output, written.id(), args.target,
             patch.target.build_id.substr(0, 16));
  for (const auto& f : patch.functions)
    fmt::print("  replaces {} ({} bytes) with {}\n", function_name(f.symbol, f.demangled, f.file),
               f.size, f.replacement);
  for (const auto& c : patch.callbacks)
    fmt::print("  {} callback: {}\n", callback_kind_name(c.kind), c.function);
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

int info(const std::string& path, bool as_json) {
  Patch p = load_patch_file(path);
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
                            {"externals", ext}}
                           .dump());
    return 0;
  }
  fmt::print("patch     {}\nid        {}\nsha256    {}\ntarget    {} ({})\n", p.name, p.id(),
             p.sha256, p.target.path, p.target.position_independent ? "PIE or shared library" : "non-PIE executable");
  fmt::print("build-id  {}\nimage     {} bytes code, {} rodata, {} data, {} bss; {} relocations\n",
             p.target.build_id, p.layout.code_size, p.layout.rodata_size, p.layout.data_size,
             p.layout.bss_size, p.relocations.size());
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

int apply(const std::string& patch_file, const TargetArgs& t, const std::string& model) {
  if (model != "stop") throw Error(fmt::format("consistency model `{}' is not available", model));
  Patch patch = load_patch_file(patch_file);
  std::vector<pid_t> pids = t.all ? processes_mapping(patch.target.build_id) : std::vector<pid_t>{t.pid};
  auto results = for_each_process(pids, t, "applied",
                                  [&](pid_t pid, const OperationOptions& o) { return apply_patch(patch, pid, o); });
  return report("apply", results, t.json, patch.name, patch.id());
}

int revert(const std::string& which, const TargetArgs& t) {
  std::vector<pid_t> pids;
  if (t.all) {
    for (pid_t pid : processes_with_patches()) {
      try {
        for (const auto& r : list_patches(pid).patches)
          if (r.matches(which)) {
            pids.push_back(pid);
            break;
          }
      } catch (const Error&) {
      }
    }
  } else {
    pids.push_back(t.pid);
  }
  auto results = for_each_process(pids, t, "reverted",
                                  [&](pid_t pid, const OperationOptions& o) { return revert_patch(which, pid, o); });
  std::string id = results.empty() ? "" : results.front().patch_id;
  return report("revert", results, t.json, results.empty() ? which : results.front().patch_name, id);
}

int list(int pid, bool as_json) {
  std::vector<pid_t> pids = pid ? std::vector<pid_t>{pid} : processes_with_patches();
  json procs = json::array();
  bool problems = false;
  for (pid_t p : pids) {
    ProcessPatches pp;
    try {
      pp = list_patches(p);
    } catch (const Error& e) {
      if (pid) throw;
      continue;  // exited while we looked
    }
    problems |= !pp.problems.empty();
    if (as_json) {
      json patches = json::array();
      for (const auto& r : pp.patches) {
        json fns = json::array();
        for (const auto& f : r.functions)
          fns.push_back({{"symbol", f.symbol},
                         {"name", function_name(f.symbol, f.demangled, f.file)},
                         {"address", fmt::format("{:#x}", f.address)},
                         {"replacement", fmt::format("{:#x}", f.replacement)}});
        json cbs = json::array();
        for (const auto& c : r.callbacks)
          cbs.push_back({{"kind", callback_kind_name(c.kind)}, {"function", c.function}});
        size_t i = patches.size();
        patches.push_back({{"id", r.id}, {"name", r.name}, {"seq", r.seq},
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
                 pp.command, pp.runtime->region_start);
    if (pp.patches.empty() && pp.problems.empty()) {
      fmt::print("pid {} ({}): no patches\n", p, pp.command);
      continue;
    }
    for (size_t i = 0; i < pp.patches.size(); ++i) {
      const auto& r = pp.patches[i];
      std::string state = state_name(r.state);
      if (r.state != RecordState::Active)
        state += fmt::format(" ({} of {} entries redirected; {})", pp.redirected[i], r.functions.size(),
                             pp.traced ? "in progress" : "interrupted: `graft recover' repairs it");
      fmt::print("pid {} ({}): {} (id {}) #{} {}{}, target {}\n", p, pp.command, r.name, r.id, r.seq,
                 state, r.cumulative ? ", cumulative" : "", r.target_path);
      for (const auto& f : r.functions)
        fmt::print("    {} at {:#x} -> {:#x}\n", function_name(f.symbol, f.demangled, f.file),
                   f.address, f.replacement);
    }
    for (const auto& problem : pp.problems) fmt::print("pid {}: WARNING: {}\n", p, problem);
  }
  if (as_json) fmt::print("{}\n", json{{"processes", procs}}.dump());
  else if (pids.empty()) fmt::print("no process has graft patches\n");
  return problems ? 1 : 0;
}

int recover(const TargetArgs& t) {
  std::vector<pid_t> pids = t.all ? processes_needing_recovery() : std::vector<pid_t>{t.pid};
  OperationOptions options;
  options.timeout_s = t.timeout_s;
  json out = json::array();
  bool all_ok = true;
  for (pid_t pid : pids) {
    RecoveryResult r = recover_process(pid, options);
    all_ok &= r.ok;
    if (t.json) {
      out.push_back({{"pid", pid}, {"ok", r.ok}, {"actions", r.actions},
                     {"error", r.ok ? json(nullptr) : json(r.error)}});
      continue;
    }
    if (!r.ok)
      fmt::print("pid {}: FAILED: {}\n", pid, r.error);
    else if (r.actions.empty())
      fmt::print("pid {}: nothing to repair\n", pid);
    for (const auto& a : r.actions) fmt::print("pid {}: {}\n", pid, a);
  }
  if (t.json)
    fmt::print("{}\n", json{{"command", "recover"}, {"results", out}}.dump());
  else if (pids.empty())
    fmt::print("no process needs repair\n");
  return all_ok ? 0 : 1;
}

}  // namespace graft::cli
