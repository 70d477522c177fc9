// `graft build --from-diff`: runs the differ's build and prints, like
// kpatch-build, which functions the patch replaces and why.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "builder/diff_build.h"
#include "cli/commands.h"
#include "common/file.h"

namespace graft::cli {

int build_from_diff(const BuildArgs& args) {
  DiffBuildOptions o;
  o.diff = args.diff;
  o.source = args.source_dir;
  o.target = args.target;
  o.build_command = args.build_command;
  o.clean_command = args.clean_command;
  o.work_dir = args.keep_work;
  o.debian_source = args.debian_source;
  std::string output = args.output.empty()
                           ? std::filesystem::path(args.diff).stem().string() + ".graft"
                           : args.output;
  o.name = args.name.empty() ? std::filesystem::path(output).stem().string() : args.name;
  // Each line says when it came, so that the time of each phase shows.
  auto start = std::chrono::steady_clock::now();
  o.progress = [start](const std::string& line) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print(stderr, "graft: [{:6.1f} s] {}\n", s, line);
    std::fflush(stderr);
  };
  DiffBuildResult r = build_patch_from_diff(o);
  r.patch.cumulative |= args.replace;
  Bytes file = serialize_patch(r.patch);
  write_file(output, file);
  Patch written = parse_patch(file, output);

  if (args.json) {
    nlohmann::json fns = nlohmann::json::array();
    for (const auto& f : r.functions)
      fns.push_back({{"symbol", f.symbol}, {"demangled", f.demangled}, {"file", f.file},
                     {"unit", f.unit}, {"reason", f.reason}, {"detail", f.detail}});
    std::vector<std::string> all_notes = r.notes;
    all_notes.insert(all_notes.end(), r.patch.notes.begin(), r.patch.notes.end());
    nlohmann::json out = {{"command", "build"},
                          {"output", output},
                          {"name", written.name},
                          {"id", written.id()},
                          {"target", args.target},
                          {"build_id", r.patch.target.build_id},
                          {"functions", fns},
                          {"new_variables", r.new_variables},
                          {"notes", all_notes},
                          {"warnings", r.patch.warnings},
                          {"work_dir", r.work_dir}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  fmt::print("built {} (id {}) for {} (build-id {}) from {}:\n", output, written.id(), args.target,
             r.patch.target.build_id.substr(0, 16), args.diff);
  for (const auto& f : r.functions) {
    std::string name = f.demangled.empty() ? f.symbol : f.demangled;
    if (!f.file.empty()) name += " (" + f.file + ")";
    if (f.reason == "new function")
      fmt::print("  adds     {}: new function ({})\n", name, f.unit);
    else
      fmt::print("  replaces {}: {}{}\n", name, f.reason, f.detail.empty() ? "" : " (" + f.detail + ")");
  }
  for (const auto& v : r.new_variables)
    fmt::print("  adds     variable {} (starts at its initial value when the patch is applied)\n", v);
  for (const auto& n : r.notes) fmt::print("  {}\n", n);
  for (const auto& n : r.patch.notes) fmt::print("  note: {}\n", n);
  if (!r.work_dir.empty())
    fmt::print("  {}: {}\n", args.debian_source.empty() ? "work directory" : "build cache and logs", r.work_dir);
  for (const auto& w : r.patch.warnings) fmt::print(stderr, "graft: warning: {}\n", w);
  return 0;
}

}  // namespace graft::cli
