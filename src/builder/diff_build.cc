#include "builder/diff_build.h"

#include <elf.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "builder/build_path.h"
#include "builder/debian_source.h"
#include "builder/inactive_lines.h"
#include "builder/patch_builder.h"
#include "linker/object_linker.h"
#include "linker/target_symbols.h"
#include "builder/work_tree.h"
#include "common/error.h"
#include "differ/change_reasons.h"
#include "differ/dwarf_facts.h"
#include "differ/patch_assembly.h"
#include "differ/target_match.h"
#include "differ/unit_diff.h"
#include "elf/elf_headers.h"
#include "elf/section_diff.h"
#include "common/file.h"

namespace graft {

namespace fs = std::filesystem;

namespace {

// One recompiled unit: its two objects and their comparison.
struct Unit {
  UnitObjects objects;
  std::string source;  // relative to the tree
  std::unique_ptr<ObjectView> original, patched;
  std::unique_ptr<UnitDiff> diff;
  std::string mismatch;  // why its original object is not the target's code ("" if it is)
  std::unique_ptr<DwarfFacts> original_dwarf, patched_dwarf;
};

// Types whose layout the diff changes: code compiled with the old layout
// (the functions that stay, the data already in memory) would misread them.
using LayoutChanges = std::map<std::string, std::pair<std::string, std::set<std::string>>>;
void layout_changes(const Unit& u, LayoutChanges& changes) {
  for (const auto& [key, d] : graft::layout_changes(*u.original_dwarf, *u.patched_dwarf)) {
    changes[key].first = d;
    changes[key].second.insert(u.source);
  }
}

std::unique_ptr<ObjectView> view_of(const std::string& path, const std::string& display,
                                    const std::string& source) {
  ElfFile elf(path, display);
  for (const auto& s : elf.sections())
    if (s.name.rfind(".gnu.lto_", 0) == 0)
      fail("{}: is an LTO object (section {}); objects built with -flto hold no machine code "
           "to compare: build without -flto",
           display, s.name);
  return std::make_unique<ObjectView>(read_relocatable(elf), source);
}

std::string unit_mismatch(const Unit& u, const TargetCode& code) {
  for (size_t p : u.diff->changed_functions()) {
    std::string m = code.mismatch(*u.original, *u.diff->original_of(p));
    if (!m.empty()) return m;
  }
  return "";
}

// A recipe that copies the sources before compiling them (Debian's expat
// compiles copies in src/ and srcw/): a compiled file with the name and the
// content of a file the diff touches stands for it.
void add_copies(std::vector<DiffFile>& touched, const WorkTree& work) {
  std::set<std::string> known;
  for (const auto& f : touched) known.insert(f.path);
  std::vector<DiffFile> copies;
  for (const auto& u : work.changed_units()) {
    std::string rel = fs::path(u.record.source).lexically_relative(work.tree()).string();
    if (known.count(rel) || !fs::is_regular_file(u.record.source)) continue;
    for (const auto& f : touched) {
      fs::path original = fs::path(work.tree()) / f.path;
      if (fs::path(f.path).filename() != fs::path(rel).filename() || !fs::is_regular_file(original)) continue;
      if (read_text_file(original) != read_text_file(u.record.source)) continue;
      DiffFile copy = f;
      copy.path = rel;
      copies.push_back(std::move(copy));
      known.insert(rel);
      break;
    }
  }
  touched.insert(touched.end(), copies.begin(), copies.end());
}

// Is the target the original build? By build-id when the build made the
// very binary (a reproducible package); else every function the target
// shares with the build's objects must have their code (a unit compiled
// twice, as expat's wide-character copy, needs one matching copy).
std::string verify_whole_target(const DiffBuildOptions& o, const DebianSource& deb, const WorkTree& work,
                                const TargetSymbols& symbols, const TargetCode& code) {
  auto id = read_build_id(o.target);
  std::string rebuilt, same_name;  // the rebuild's binaries (of the target's file name)
  std::string twin;                // the first of the target's name, in the work tree
  std::string name = fs::path(o.target).filename().string();
  for (const auto& b : recorded_binaries(deb.cache)) {
    if (id && b.build_id == *id)
      return fmt::format("{} is Debian's build of {} {}, reproduced exactly (build-id {}, {} in the "
                         "rebuilt tree)",
                         o.target, deb.package, deb.version, id->substr(0, 16), b.path);
    std::string entry = b.path + " " + b.build_id.substr(0, 16);
    rebuilt += (rebuilt.empty() ? "" : ", ") + entry;
    if (fs::path(b.path).filename() != name) continue;
    same_name += (same_name.empty() ? "" : ", ") + entry;
    if (twin.empty() && fs::is_regular_file(fs::path(work.tree()) / b.path))
      twin = (fs::path(work.tree()) / b.path).string();
  }
  if (!same_name.empty()) rebuilt = same_name;
  std::vector<std::pair<std::string, std::string>> differing;  // function, what differs
  std::set<std::string> matched;
  size_t compared = 0;
  for (const auto& r : work.original_units()) {
    std::string source = fs::path(r.source).lexically_relative(work.tree()).string();
    auto view = view_of(r.compared, source + " (original)", source);
    for (size_t p = 0; p < view->pieces().size(); ++p) {
      const Piece& piece = view->pieces()[p];
      if (!piece.function) continue;
      std::string file = piece.local ? (piece.file.empty() ? source : piece.file) : "";
      const ElfSymbol* sym = nullptr;
      try {
        sym = symbols.reference(piece.name, file);
      } catch (const Error&) {
      }
      if (!sym) continue;
      std::string key = piece.name + (file.empty() ? "" : " (" + fs::path(file).filename().string() + ")");
      ++compared;
      std::string m = code.mismatch(*view, p);
      if (m.empty()) matched.insert(key);
      else differing.emplace_back(key, m + " (" + source + ")");
    }
  }
  std::erase_if(differing, [&](const auto& d) { return matched.count(d.first) > 0; });
  std::string target_id = id ? id->substr(0, 16) : "none";
  if (!differing.empty())
    fail("{} is not the build of {} {}: {} of the functions it shares with the rebuild differ, the "
         "first `{}': {}; it comes from another version or other sources (its build-id {}; the "
         "rebuild's binaries: {})",
         o.target, deb.package, deb.version, differing.size(), differing.front().first,
         differing.front().second, target_id, rebuilt.empty() ? "none" : rebuilt);
  if (compared == 0)
    fail("{} shares no function with the build of {} {} (build-id {}; the rebuild's binaries: {})",
         o.target, deb.package, deb.version, target_id, rebuilt.empty() ? "none" : rebuilt);
  // Not bit for bit, yet the same code: typically another version of a
  // build dependency (a string of its headers compiled in) or a build path
  // recorded in the binary. Where they differ tells which.
  std::string where;
  if (!twin.empty()) {
    try {
      std::string d = section_differences(o.target, twin);
      if (!d.empty()) where = "; they differ in " + d;
    } catch (const Error&) {
    }
  }
  return fmt::format("{} is not bit for bit a binary of this build (build-id {}; the rebuild's: {}{}), "
                     "but all {} functions it shares with it have the same code",
                     o.target, target_id, rebuilt.empty() ? "none" : rebuilt, where, matched.size());
}

// The binary of a Debian rebuild, other than those named `target_name',
// that defines the function `name'; "" if none.
std::string rebuilt_binary_defining(const DebianSource& deb, const WorkTree& work, const std::string& name,
                                    const fs::path& target_name) {
  for (const auto& b : recorded_binaries(deb.cache)) {
    fs::path path = fs::path(work.tree()) / b.path;
    if (fs::path(b.path).filename() == target_name || !fs::is_regular_file(path)) continue;
    try {
      ElfFile elf(path.string());
      for (const auto& s : elf.symbols())
        if (s.name == name && s.type == STT_FUNC && s.defined()) return b.path;
    } catch (const Error&) {
    }
  }
  return "";
}

}  // namespace

DiffBuildResult build_patch_from_diff(const DiffBuildOptions& o) {
  {
    ElfFile probe(o.target);
    if (probe.type() != ET_EXEC && probe.type() != ET_DYN)
      fail("{}: not an executable or shared library", o.target);
  }
  if (!fs::is_regular_file(o.diff)) fail("{}: no such file", o.diff);

  WorkTreeSetup setup{o.source, o.work_dir, o.clean_command};
  std::string command = o.build_command;
  std::optional<DebianSource> deb;
  if (!o.debian_source.empty()) {
    deb = prepare_debian_source(o.debian_source, o.target, o.progress);
    setup = {deb->tree, deb->cache + "/work", "", true, true, debian_build_environment(),
             debian_build_path(deb->package, deb->version), build_dependency_versions(deb->tree)};
    command = debian_build_command();
  }
  WorkTree work(setup, o.progress);
  std::string origin = deb ? fmt::format("{} {}", deb->package, deb->version) : o.source;
  DiffBuildResult result;
  bool building = true;  // a failed build leaves its work directory for the post-mortem
  try {
    work.check_diff_applies(o.diff);
    if (work.build_original(command) && deb) record_built_binaries(work.tree(), deb->cache);
    // Read after the build: a Debian rebuild may have provided its symbols.
    ElfFile target(o.target);
    if (deb) {
      // A stripped target that is no rebuilt binary still has its exported
      // functions to compare.
      TargetSymbols table(target, target.has_symtab() ? SymbolTable::full : SymbolTable::exported);
      TargetCode table_code(target, table);
      result.notes.push_back(verify_whole_target(o, *deb, work, table, table_code));
    }
    TargetSymbols symbols(target);
    TargetCode code(target, symbols);
    auto touched = work.apply_diff(o.diff);
    work.build_patched(command, touched);
    building = false;
    add_copies(touched, work);

    std::vector<std::unique_ptr<Unit>> units;
    for (auto& objects : work.changed_units()) {
      auto u = std::make_unique<Unit>();
      u->source = fs::path(objects.record.source).lexically_relative(work.tree()).string();
      std::string obj = fs::path(objects.record.object).lexically_relative(work.tree()).string();
      u->patched = view_of(objects.record.compared, obj + " (patched)", u->source);
      if (!objects.original.empty()) u->original = view_of(objects.original, obj + " (original)", u->source);
      u->diff = std::make_unique<UnitDiff>(u->original.get(), *u->patched);
      u->patched_dwarf = std::make_unique<DwarfFacts>(objects.record.compared);
      if (!objects.original.empty()) u->original_dwarf = std::make_unique<DwarfFacts>(objects.original);
      u->objects = std::move(objects);
      units.push_back(std::move(u));
    }
    o.progress(fmt::format("compared {} recompiled objects with the original build's", units.size()));

    // A function whose only change is a __LINE__ moved by lines added or
    // removed above it keeps its original code: replacing it would change
    // nothing but a line number in a message, at the cost of a busy
    // function's transition.
    std::vector<std::string> line_only;
    std::map<const Unit*, std::vector<std::string>> line_notes;
    for (auto& u : units) {
      if (!u->original) continue;
      for (size_t p : std::vector<size_t>(u->diff->changed_functions())) {
        auto changes = u->diff->immediate_only_change(p);
        if (!changes) continue;
        const Piece& q = u->original->pieces()[*u->diff->original_of(p)];
        auto moves = moved_line_numbers(u->patched->pieces()[p].name, *changes, *u->patched_dwarf, touched);
        if (!moves) continue;
        u->diff->leave_out(p);
        std::string name = demangle(q.name);
        if (std::find(line_only.begin(), line_only.end(), name.empty() ? q.name : name) == line_only.end())
          line_only.push_back(name.empty() ? q.name : name);
        line_notes[u.get()].push_back(fmt::format("left out `{}' ({}): only __LINE__ values moved ({})",
                                                  name.empty() ? q.name : name, u->source, *moves));
      }
    }

    // A source compiled into several objects (a PIC and a non-PIC one, two
    // programs): the target's code is the object whose originals match it.
    // Copies of one file are one source (a recipe that compiles its sources
    // twice, as expat's wide-character build): the target has one of them.
    std::map<std::string, std::vector<Unit*>> by_source;
    std::map<std::string, std::string> leader_of;  // source -> first source with its name and content
    for (auto& u : units) {
      if (!leader_of.count(u->source)) {
        std::string leader = u->source;
        for (const auto& [other, its_leader] : leader_of)
          if (fs::path(other).filename() == fs::path(u->source).filename() &&
              read_text_file(fs::path(work.tree()) / other) == read_text_file(fs::path(work.tree()) / u->source)) {
            leader = its_leader;
            break;
          }
        leader_of[u->source] = leader;
      }
      by_source[leader_of[u->source]].push_back(u.get());
    }
    std::vector<Unit*> chosen;
    std::vector<const UnitDiff*> all_diffs;
    std::set<std::string> refusals;
    LayoutChanges layouts;
    std::set<std::string> notes_seen;
    auto note_once = [&](const std::string& n) {
      if (notes_seen.insert(n).second) result.notes.push_back(n);
    };
    for (auto& [source, candidates] : by_source) {
      Unit* pick = nullptr;
      for (Unit* u : candidates) {
        for (const auto& r : u->diff->refusals()) refusals.insert(r);
        if (u->original) layout_changes(*u, layouts);
        if (!u->original) {
          all_diffs.push_back(u->diff.get());
          continue;
        }
        if (u->diff->changed_functions().empty()) continue;
        u->mismatch = unit_mismatch(*u, code);
        if (u->mismatch.empty() && !pick) pick = u;
      }
      const Unit* noted = pick ? pick : candidates.front();
      for (Unit* u : candidates)
        if (u->source == noted->source)
          for (const auto& n : line_notes[u]) note_once(n);
      std::set<std::string> copies;
      for (Unit* u : candidates)
        if (u->source != source) copies.insert(u->source);
      if (pick) {
        if (!copies.empty())
          note_once(fmt::format("{} is compiled from copies of one file ({} and {}); {} has the code "
                                "of {}",
                                fs::path(source).filename().string(), source,
                                fmt::join(copies, ", "), o.target, pick->source));
        chosen.push_back(pick);
        all_diffs.push_back(pick->diff.get());
        continue;
      }
      for (Unit* u : candidates)
        if (!u->mismatch.empty() && deb) {
          // A unit linked into another binary of the package (nginx's
          // dynamic modules): the patch is for that one.
          const Piece& fn = u->original->pieces()[*u->diff->original_of(u->diff->changed_functions().front())];
          bool in_target = std::any_of(target.symbols().begin(), target.symbols().end(), [&](const ElfSymbol& s) {
            return s.name == fn.name && s.type == STT_FUNC && s.defined();
          });
          std::string other =
              in_target ? "" : rebuilt_binary_defining(*deb, work, fn.name, fs::path(o.target).filename());
          if (!other.empty())
            fail("{} is not in {} but in {} of the rebuild ({}): build the patch for the installed "
                 "copy of {}",
                 fn.name, o.target, other, u->source, fs::path(other).filename().string());
        }
      for (Unit* u : candidates)
        if (!u->mismatch.empty())
          fail("{} was not built from {} with these flags: {} (compared with {}); build the "
               "target from this tree with the same compiler and flags, or pass the build "
               "command that did (--build)",
               o.target, origin, u->mismatch, u->objects.record.object);
    }
    for (const auto& [type, change] : layouts) {
      std::string units;
      for (const auto& s : change.second) units += (units.empty() ? "" : ", ") + s;
      refusals.insert(fmt::format("{} changes layout ({}; in {}): the running code and its data use "
                                  "the original layout",
                                  type, change.first, units));
    }
    if (!refusals.empty()) {
      std::string all;
      for (const auto& r : refusals) all += (all.empty() ? "" : "; ") + r;
      fail("cannot build a live patch from {}: {}", o.diff, all);
    }
    if (chosen.empty() && !line_only.empty()) {
      std::string names;
      for (const auto& n : line_only) names += (names.empty() ? "`" : "', `") + n;
      fail("{}: changes only __LINE__ values in {} function(s) ({}'), by moving lines; nothing "
           "to patch",
           o.diff, line_only.size(), names);
    }
    if (chosen.empty()) {
      // Changed lines the build does not compile explain it best.
      std::string dropped;
      std::set<std::string> seen;
      for (auto& u : units)
        for (const auto& f : touched) {
          if (u->source != f.path || !seen.insert(f.path).second) continue;
          InactiveLines in = inactive_changed_lines(u->objects.record, f);
          if (in.lines.empty()) continue;
          dropped += fmt::format("{}{} line{} {}{}", dropped.empty() ? "" : "; ", f.path,
                                 in.lines.size() > 1 ? "s" : "", in.lines.front(),
                                 in.lines.size() > 1 ? fmt::format("-{}", in.lines.back()) : "");
          if (!in.conditional.empty()) dropped += " inside " + in.conditional;
        }
      if (!dropped.empty())
        fail("{}: changes no function's code in the objects of {}: its changed lines are not "
             "compiled in this configuration ({}); nothing to patch",
             o.diff, o.target, dropped);
      fail("{}: changes no function's code in the objects of {} ({} objects recompiled); nothing "
           "to patch",
           o.diff, o.target, units.size());
    }

    for (const UnitDiff* d : all_diffs)
      for (const auto& n : d->notes()) result.notes.push_back(n);
    PatchAssembler assembler(all_diffs);
    std::map<const UnitDiff*, const Unit*> unit_of;
    for (auto& u : units) unit_of[u->diff.get()] = u.get();
    for (Unit* u : chosen)
      for (size_t p : u->diff->changed_functions()) assembler.replace(*u->diff, p);
    RelocatableObject object = assembler.finish();
    std::string abs = fs::absolute(o.target).lexically_normal().string();
    result.patch = link_patch_object(object, target, abs, o.name);
    for (const auto& e : result.patch.externals) {
      auto it = assembler.expected_in_target().find(e.name);
      if (e.where == ExternalSymbol::Where::Library && it != assembler.expected_in_target().end())
        fail("{} has no symbol `{}', which the original build defines in {} and the patch uses; "
             "was it removed at link time (--gc-sections, LTO), or is this another build?",
             o.target, e.name, it->second);
    }

    for (const auto& f : assembler.functions()) {
      const Piece& p = f.unit->patched().pieces()[f.piece];
      FunctionReport r;
      r.unit = f.unit->patched().source();
      if (f.replaces) {
        const Piece& q = f.unit->original()->pieces()[*f.unit->original_of(f.piece)];
        r.symbol = q.name;
        r.file = q.local ? (q.file.empty() ? r.unit : q.file) : "";
        ChangeReason why = reason_for(p.name, *unit_of.at(f.unit)->patched_dwarf, touched);
        r.reason = why.reason;
        r.detail = why.detail;
        if (auto reader = f.unit->replaced_as_reader(f.piece)) {
          r.reason = *reader;
          r.detail.clear();
        } else if (auto other = f.unit->original()->folded_into(q); !other.empty() && r.reason == "changed") {
          r.detail = fmt::format("GCC had folded it into `{}', whose code was the same (-fipa-icf: it was "
                                 "a jump there); the fix makes them differ",
                                 other);
        }
      } else {
        r.symbol = p.name;
        r.reason = "new function";
      }
      r.demangled = demangle(r.symbol);
      result.functions.push_back(std::move(r));
    }
    result.new_variables = assembler.new_variables();
    result.notes.push_back(fmt::format(
        "{} matches the original build: the {} replaced functions have the same "
        "instructions (relocated fields aside) as in the objects built from {}",
        o.target, result.patch.functions.size(), origin));
  } catch (...) {
    if (deb) {
      work.reverse_diff();
      if (building) o.progress("build logs: " + work.root());
      throw;
    }
    if (!o.work_dir.empty() || !building) throw;
    work.keep();
    o.progress("work directory kept: " + work.root());
    throw;
  }
  if (deb) work.reverse_diff();
  if (!o.work_dir.empty() || deb) result.work_dir = work.root();
  return result;
}

}  // namespace graft
