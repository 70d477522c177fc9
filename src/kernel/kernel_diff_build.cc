#include "kernel/kernel_diff_build.h"

#include <elf.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "builder/build_command.h"
#include "common/error.h"
#include "common/file.h"
#include "differ/change_reasons.h"
#include "differ/dwarf_facts.h"
#include "differ/patch_assembly.h"
#include "differ/target_match.h"
#include "differ/unit_diff.h"
#include "kernel/diff_objects.h"
#include "kernel/header_users.h"
#include "kernel/kernel_image.h"
#include "kernel/kernel_tree.h"
#include "kernel/object_owner.h"
#include "kernel/patch_symbols.h"
#include "kernel/shipped_module.h"
#include "linker/relocatable_writer.h"

namespace graft::kernel {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool starts_with(const std::string& s, const std::string& head) { return s.rfind(head, 0) == 0; }

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// The kernel's tables whose entries refer to code; the module loader
// processes a module's own (Linux 6.1: arch/x86/kernel/module.c
// module_finalize, kernel/module/main.c). An entry goes with its code.
const std::vector<EntryTable>& kernel_tables() {
  static const std::vector<EntryTable> tables = {
      {"__mcount_loc", 8, "", 0, "", 0, 0},          // ftrace sites: the new code's __fentry__ calls
      {".orc_unwind_ip", 4, ".orc_unwind", 6, "", 0, 0},  // ORC: reliable stacks for the transition
      {".retpoline_sites", 4, "", 0, "", 0, 0},
      {".return_sites", 4, "", 0, "", 0, 0},
      {".call_sites", 4, "", 0, "", 0, 0},
      {".ibt_endbr_seal", 4, "", 0, "", 0, 0},
      {".smp_locks", 4, "", 0, "", 0, 0},
      {"__jump_table", 16, "", 0, "", 0, 0},         // struct jump_entry {s32 code, target; long key}
      {".static_call_sites", 8, "", 0, "", 0, 0},    // struct static_call_site {s32 addr, key}
      {"__ex_table", 12, "", 0, "", 0, 0},           // struct exception_table_entry {int insn, fixup, data}
      {"__bug_table", 12, "", 0, "", 0, 0},          // struct bug_entry (relative pointers, verbose)
      // struct alt_instr {s32 instr_offset, repl_offset; u16 cpuid; u8 instrlen, replacementlen}
      {".altinstructions", 12, "", 0, ".altinstr_replacement", 4, 11},
      {".parainstructions", 16, "", 0, "", 0, 0},    // struct paravirt_patch_site {u8 *instr; u8 type, len}
  };
  return tables;
}

// Sections that may refer to changed code and stay behind: objtool's
// annotations (discarded when vmlinux is linked) and the export tables (the
// export stays vmlinux's symbol, which livepatch redirects).
bool stays_behind(const std::string& section) {
  return starts_with(section, ".discard") || starts_with(section, "__ksymtab") ||
         starts_with(section, "___ksymtab") || starts_with(section, "__kcrctab") || starts_with(section, ".note");
}

struct Unit {
  KernelObject object;
  ObjectOwner owner;                     // vmlinux, or the module it is linked into
  const ShippedModule* module = nullptr;  // that module as the kernel package ships it
  std::unique_ptr<ObjectView> original, patched;
  std::unique_ptr<UnitDiff> diff;
  std::unique_ptr<DwarfFacts> original_dwarf, patched_dwarf;
};

std::unique_ptr<ObjectView> view_of(const std::string& path, const std::string& display, const std::string& source) {
  ElfFile elf(path, display);
  return std::make_unique<ObjectView>(read_relocatable(elf), source);
}

// A changed function found in the image.
struct Located {
  const Unit* unit;
  size_t piece;  // in the patched object
  FunctionFingerprint fingerprint;
};

// Reverses the diff in the prepared tree however the build ends; a tree
// that cannot be restored is marked for preparing again.
struct AppliedDiff {
  const KernelTree& tree;
  std::string diff, log;
  int strip;
  bool applied = false;
  void revert() {
    if (!applied) return;
    applied = false;
    if (tree.patch(diff, strip, true, false, log) != 0) {
      std::error_code ec;
      fs::remove(tree.dir() + "/.graft-prepared", ec);
      fail("cannot reverse {} in {} (see {}); the tree will be prepared again next time", diff, tree.dir(), log);
    }
  }
  ~AppliedDiff() {
    try {
      revert();
    } catch (...) {
    }
  }
};

void copy_objects(const KernelTree& tree, const std::vector<KernelObject>& objects, const fs::path& to) {
  for (const auto& o : objects) {
    fs::path dest = to / o.object;
    fs::create_directories(dest.parent_path());
    fs::copy_file(fs::path(tree.dir()) / o.object, dest, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

KernelDiffResult build_kernel_patch_from_diff(const KernelDiffOptions& o, const BuildProgress& progress) {
  std::string name = o.name.empty() ? livepatch_name_for(o.output) : livepatch_name_for(o.name);
  KernelPaths paths = KernelPaths::in_cache(o.release, o.cache);
  if (!fs::exists(paths.headers + "/Makefile") || !fs::exists(paths.image) || !fs::exists(paths.system_map))
    fail("kernel {} is not prepared in {} (run scripts/kernel/fetch.sh {})", o.release,
         fs::path(paths.image).parent_path().parent_path().string(), o.release);
  if (!fs::is_regular_file(o.diff)) fail("{}: no such file", o.diff);
  std::string diff = fs::absolute(o.diff).string();
  std::string config = o.config.empty() ? paths.headers + "/.config" : o.config;
  KernelDiffResult result;
  WorkDir work_dir(o.keep_work);
  fs::path work = work_dir.path;

  // prepare_tree
  KernelTree tree(o.source, config, o.cache, progress);
  result.tree_cached = tree.was_cached();
  result.prepare_seconds = tree.prepare_seconds();

  // check_diff: nothing is compiled for a diff that does not apply or
  // that touches what graft cannot map to objects.
  std::string patch_log = (work / "patch.log").string();
  int strip = -1;
  for (int p : {1, 0, 2, 3})
    if (tree.patch(diff, p, false, true, patch_log) == 0) {
      strip = p;
      break;
    }
  if (strip < 0)
    fail("{}: does not apply to {} with patch -p1, -p0, -p2 or -p3 (nothing was compiled):{}", o.diff,
         o.source, tail_of_file(patch_log, 10));
  auto files = parse_unified_diff(read_text_file(diff), strip);
  DiffObjects plan = objects_for_diff(files);
  if (!plan.refusals.empty()) fail("cannot build a live patch from {}: {}", o.diff, join(plan.refusals, "; "));
  for (const auto& f : plan.ignored) result.notes.push_back(fmt::format("ignored {}: not part of the kernel's code", f));
  // find_header_users: the objects of this configuration a changed header reaches.
  std::map<std::string, std::string> header_of = add_header_users(tree, plan, work.string(), progress);
  if (plan.objects.empty()) fail("{}: changes no C file of the kernel; nothing to patch", o.diff);
  std::vector<std::string> objects;
  for (const auto& k : plan.objects) objects.push_back(k.object);

  // compile_objects
  auto t0 = Clock::now();
  progress(fmt::format("compiling {} object(s) as they are: {}", objects.size(), join(objects, ", ")));
  tree.compile(objects, (work / "compile-original.log").string());
  // Kbuild's dependency lists say which of them really include the header.
  std::erase_if(plan.objects, [&](const KernelObject& k) {
    auto h = header_of.find(k.object);
    if (h == header_of.end() || object_depends_on(tree.dir(), k.object, h->second)) return false;
    result.notes.push_back(fmt::format("left out {}: it does not include {} in this configuration", k.object, h->second));
    return true;
  });
  objects.clear();
  for (const auto& k : plan.objects) objects.push_back(k.object);
  if (objects.empty()) fail("{}: no object of this configuration includes the changed header(s); nothing to patch", o.diff);
  copy_objects(tree, plan.objects, work / "original");
  {
    AppliedDiff applied{tree, diff, patch_log, strip};
    if (tree.patch(diff, strip, false, false, patch_log) != 0)
      fail("{}: patch -p{} failed in {}:{}", o.diff, strip, tree.dir(), tail_of_file(patch_log, 10));
    applied.applied = true;
    progress(fmt::format("compiling them with {} applied", fs::path(o.diff).filename().string()));
    tree.compile(objects, (work / "compile-patched.log").string());
    copy_objects(tree, plan.objects, work / "patched");
    applied.revert();
  }
  result.compile_seconds = since(t0);

  // compare_objects
  std::map<std::string, std::unique_ptr<ShippedModule>> modules;  // by name
  std::vector<std::unique_ptr<Unit>> units;
  std::vector<std::string> refusals;
  std::map<std::string, std::pair<std::string, std::set<std::string>>> layouts;
  for (const auto& k : plan.objects) {
    auto u = std::make_unique<Unit>();
    u->object = k;
    u->owner = owner_of_object(tree.dir(), k.object, paths.modules + "/modules.order");
    if (!u->owner.module.empty()) {
      auto& mod = modules[u->owner.module];
      if (!mod) mod = std::make_unique<ShippedModule>(paths.modules + "/" + u->owner.module_file, u->owner.module);
      u->module = mod.get();
      progress(fmt::format("{} is part of module {} ({})", k.object, u->owner.module, u->owner.module_file));
    }
    std::string orig = (work / "original" / k.object).string(), patched = (work / "patched" / k.object).string();
    u->original = view_of(orig, k.object + " (original)", k.source);
    u->patched = view_of(patched, k.object + " (patched)", k.source);
    u->diff = std::make_unique<UnitDiff>(u->original.get(), *u->patched);
    u->original_dwarf = std::make_unique<DwarfFacts>(orig);
    u->patched_dwarf = std::make_unique<DwarfFacts>(patched);
    for (const auto& r : u->diff->refusals()) refusals.push_back(r);
    for (const auto& n : u->diff->notes()) result.notes.push_back(n);
    for (const auto& [type, d] : layout_changes(*u->original_dwarf, *u->patched_dwarf)) {
      layouts[type].first = d;
      layouts[type].second.insert(k.source);
    }
    units.push_back(std::move(u));
  }
  for (const auto& [type, change] : layouts) {
    std::vector<std::string> where(change.second.begin(), change.second.end());
    refusals.push_back(fmt::format("{} changes layout ({}; in {}): the running kernel's code and data use the "
                                   "original layout",
                                   type, change.first, join(where, ", ")));
  }
  if (!refusals.empty())
    fail("cannot build a live patch from {}: {}. A live patch replaces functions only: keep data and "
         "struct layouts as they are, and attach new state with shadow variables (klp_shadow_*), set "
         "up and torn down by callbacks, in a --from-source patch",
         o.diff, join(refusals, "; "));

  std::vector<std::string> line_only;
  for (auto& u : units)
    for (size_t p : std::vector<size_t>(u->diff->changed_functions())) {
      auto changes = u->diff->immediate_only_change(p);
      if (!changes) continue;
      auto moves = moved_line_numbers(u->patched->pieces()[p].name, *changes, *u->patched_dwarf, files);
      if (!moves) continue;
      u->diff->leave_out(p);
      const std::string& fn = u->original->pieces()[*u->diff->original_of(p)].name;
      line_only.push_back(fn);
      result.notes.push_back(
          fmt::format("left out {} ({}): only __LINE__ values moved ({})", fn, u->object.source, *moves));
    }

  size_t changed = 0;
  for (auto& u : units) changed += u->diff->changed_functions().size();
  if (!plan.headers.empty() && changed > kMaxHeaderFunctions)
    fail("cannot build a live patch from {}: its change to {} changes {} functions in {} object(s); graft replaces at "
         "most {} for a header change (every caller of a changed inline function is one): narrow the change, or "
         "write a --from-source patch",
         o.diff, join(plan.headers, ", "), changed, units.size(), kMaxHeaderFunctions);
  if (changed == 0 && !line_only.empty())
    fail("{}: changes only __LINE__ values in {} function(s) ({}), by moving lines; nothing to patch", o.diff,
         line_only.size(), join(line_only, ", "));
  if (changed == 0)
    fail("{}: changes no function's code in {} (in this configuration); nothing to patch", o.diff,
         join(objects, ", "));

  // locate_functions: each changed function must be vmlinux's, its code
  // in the image that of the original object, and traceable.
  progress(fmt::format("reading kernel {} (System.map, image, exports)", o.release));
  KernelImage image(paths);
  const SymbolTable& symbols = image.symbols();
  SymbolAt symbol_at = [&](uint64_t address, int64_t* offset, const std::string& wanted) -> std::string {
    const KernelSymbol* s = symbols.text_at(address, wanted);
    if (!s) return "";
    *offset = int64_t(address - s->address);
    return s->name;
  };
  // Where the original code's references to statics lead: (name, file) ->
  // address, read from the image; it tells apart statics vmlinux defines
  // more than once.
  std::map<std::pair<std::string, std::string>, uint64_t> addresses;
  // The same for each module's statics, at the module's laid-out addresses.
  std::map<std::string, std::map<std::pair<std::string, std::string>, uint64_t>> module_addresses;
  std::vector<Located> located;
  for (auto& u : units)
    for (size_t p : u->diff->changed_functions()) {
      size_t q = *u->diff->original_of(p);
      const Piece& fn = u->original->pieces()[q];
      auto learner = [&](std::map<std::pair<std::string, std::string>, uint64_t>& seen) {
        return [&seen, &u](const ElfRela& r, uint64_t value) {
          Place pl = u->original->place_of(r);
          if (!pl.piece) return;
          const Piece& t = u->original->pieces()[*pl.piece];
          if (!t.local) return;
          seen[{t.name, t.file.empty() ? u->object.source : t.file}] = value - uint64_t(pl.offset);
        };
      };
      std::string mismatch;
      std::optional<unsigned> pos;
      std::map<std::pair<std::string, std::string>, uint64_t> seen;
      size_t count = 0;
      if (u->module) {
        // A module's function: compared with the shipped .ko, laid out.
        const ShippedModule& mod = *u->module;
        auto candidates = mod.named(fn.name);
        count = candidates.size();
        SymbolAt module_symbol_at = [&](uint64_t address, int64_t* offset, const std::string& wanted) {
          return mod.function_at(address, offset, wanted);
        };
        for (size_t k = 0; k < candidates.size() && !pos; ++k) {
          if (mod.symbols()[candidates[k]].type != STT_FUNC) continue;
          seen.clear();
          std::string m = code_mismatch(*u->original, q, mod.code(candidates[k]), module_symbol_at, learner(seen));
          if (m.empty()) {
            pos = candidates.size() > 1 ? unsigned(k + 1) : 0u;
            module_addresses[mod.name()].insert(seen.begin(), seen.end());
          } else if (mismatch.empty()) {
            mismatch = m;
          }
        }
      } else {
        auto candidates = symbols.vmlinux_named(fn.name);
        count = candidates.size();
        for (size_t k = 0; k < candidates.size() && !pos; ++k) {
          const KernelSymbol* s = candidates[k];
          const KernelSymbol* next = symbols.next_after(s->address);
          if (!next || !s->text()) continue;
          RunningFunction running{s->address, image.read(s->address, next->address - s->address), true};
          seen.clear();
          std::string m = code_mismatch(*u->original, q, running, symbol_at, learner(seen));
          if (m.empty()) {
            pos = candidates.size() > 1 ? unsigned(k + 1) : 0u;
            addresses.insert(seen.begin(), seen.end());
          } else if (mismatch.empty()) {
            mismatch = m;
          }
        }
      }
      std::string where = u->module ? fmt::format("module {} ({})", u->module->name(), u->module->path())
                                    : std::string("the kernel image");
      if (count == 0) {
        refusals.push_back(fmt::format("{} ({}) is not in {}: not built in this configuration?", fn.name,
                                       u->object.source, where));
        continue;
      }
      if (!pos) {
        refusals.push_back(fmt::format("{} ({}) in {} is not the code compiled from {}: {}; is this the source "
                                       "and configuration the running kernel was built from?",
                                       fn.name, u->object.source, where, o.source, mismatch));
        continue;
      }
      try {
        located.push_back({u.get(), p, u->module ? u->module->patchable_function(fn.name, *pos)
                                                 : image.patchable_function(fn.name, *pos)});
      } catch (const Error& e) {
        refusals.push_back(fmt::format("{} ({}): {}", fn.name, u->object.source, e.what()));
      }
    }
  if (!refusals.empty()) fail("cannot build a live patch from {}: {}", o.diff, join(refusals, "; "));

  // assemble
  std::vector<const UnitDiff*> diffs;
  for (auto& u : units) diffs.push_back(u->diff.get());
  PatchAssembler assembler(diffs);
  for (const auto& l : located) assembler.replace(*l.unit->diff, l.piece);
  result.carried = assembler.carry_entries(kernel_tables());
  for (const auto& r : assembler.references_into_patch()) {
    if (stays_behind(r.section)) continue;
    refusals.push_back(fmt::format("{} ({}): section {} refers to its code, and graft cannot carry {} into "
                                   "a live patch",
                                   r.function, r.unit->patched().source(), r.section, r.section));
  }
  if (!refusals.empty()) fail("cannot build a live patch from {}: {}", o.diff, join(refusals, "; "));
  RelocatableObject object = assembler.finish();

  // resolve_symbols: what the patch does not carry is the kernel's.
  std::vector<const ShippedModule*> patched_modules;
  for (const auto& [n, mod] : modules) patched_modules.push_back(mod.get());
  auto module_of_file = [&](const std::string& file) -> const ShippedModule* {
    // A static's file: the unit's source, or the name GCC's STT_FILE gives it.
    for (auto& u : units)
      if (u->object.source == file) return u->module;
    for (auto& u : units)
      if (fs::path(u->object.source).filename() == fs::path(file).filename()) return u->module;
    return nullptr;
  };
  PatchSymbolResolver resolver(image, module_of_file, patched_modules, addresses, module_addresses);
  for (auto& s : object.symbols) {
    if (s.shndx != SHN_UNDEF || s.name.empty()) continue;
    std::string why;
    std::optional<std::string> name = resolver.resolve(s.name, s.file, &why);
    if (!name) fail("cannot build a live patch from {}: {}", o.diff, why);
    s.name = *name;
    s.file.clear();
  }
  // The patch's own symbols stay local to the module; each replacing
  // function gets a global name the klp_func table refers to.
  for (auto& s : object.symbols)
    if (s.shndx != SHN_UNDEF && s.bind != STB_LOCAL) s.bind = STB_LOCAL;
  std::vector<KernelReplacement> replacements;
  KernelPatchManifest& m = result.build.manifest;
  m.name = name;
  m.release = o.release;
  m.anchor_address = image.anchor_address();
  m.replace = o.replace;
  for (size_t i = 0; i < located.size(); ++i) {
    const Located& l = located[i];
    const ReplacementRecord* rec = nullptr;
    const Piece& q = l.unit->original->pieces()[*l.unit->diff->original_of(l.piece)];
    for (const auto& r : object.replacements)
      if (r.target == q.name) rec = &r;
    if (!rec) fail("{}: the assembled patch has no replacement for {}", o.diff, q.name);
    ElfSymbol alias = object.symbols.at(rec->symbol);
    alias.name = fmt::format("graft_new_{}", i);
    alias.bind = STB_GLOBAL;
    alias.type = STT_FUNC;
    alias.value += uint64_t(rec->addend);
    object.add_symbol(alias);
    replacements.push_back({q.name, l.fingerprint.sympos, alias.name, l.fingerprint.object});
    if (l.unit->module) m.module_files[l.unit->owner.module] = l.unit->owner.module_file;
    m.functions.push_back(l.fingerprint);
  }

  // Reports, in the words of the userspace build.
  for (const auto& f : assembler.functions()) {
    const Unit* u = nullptr;
    for (auto& x : units)
      if (x->diff.get() == f.unit) u = x.get();
    const Piece& p = f.unit->patched().pieces()[f.piece];
    KernelFunctionReport r;
    r.source = u->object.source;
    r.object = u->owner.module;
    if (f.replaces) {
      r.name = f.unit->original()->pieces()[*f.unit->original_of(f.piece)].name;
      for (const auto& l : located)
        if (l.unit == u && l.piece == f.piece) r.sympos = l.fingerprint.sympos;
      ChangeReason why = reason_for(p.name, *u->patched_dwarf, files);
      r.reason = why.reason;
      r.detail = why.detail;
    } else {
      r.name = p.name;
      r.reason = "new function";
    }
    result.functions.push_back(std::move(r));
  }

  // kbuild_module
  progress(fmt::format("building livepatch module {}", name));
  fs::path dir = work / "module";
  fs::create_directories(dir);
  write_relocatable(object, (dir / "graft_diff.o").string());
  std::string stub = fmt::format("/* Generated by graft build --kernel --from-diff {} */\n"
                                 "#include <linux/kernel.h>\n#include <linux/module.h>\n#include <linux/livepatch.h>\n\n",
                                 fs::path(o.diff).filename().string());
  for (const auto& r : replacements) stub += fmt::format("void {}(void);\n", r.replacement);
  stub += klp_structures(replacements, {}, o.replace, fs::path(o.diff).filename().string());
  std::ofstream(dir / "graft_stub.c") << stub;
  // modpost reads each object's Kbuild command file; this one has no source.
  std::ofstream(dir / ".graft_diff.o.cmd") << "cmd_graft_diff.o := graft build --kernel --from-diff\n";
  std::ofstream(dir / "Kbuild") << fmt::format("obj-m := {}.o\n{}-y := graft_stub.o graft_diff.o\n", name, name);
  kbuild(paths, dir, "", name);
  fs::path module = dir / (name + ".ko");
  // resolve_symbols named the object's symbols; what is left undefined is
  // the stub's (klp_enable_patch and the module loader's own), exported.
  auto naming = [&](const std::string& symbol) {
    std::string why;
    auto name = resolver.resolve(symbol, "", &why);
    if (!name) fail("{}: {}", o.diff, why);
    return *name;
  };
  result.build.conversion = convert_module(module.string(), naming, m, progress);
  result.build.module_path = o.output;
  fs::copy_file(module, o.output, fs::copy_options::overwrite_existing);
  return result;
}

}  // namespace graft::kernel
