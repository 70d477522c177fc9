// Turns the module Kbuild linked into a livepatch module in the sense of
// the kernel's Documentation/livepatch/module-elf-format.rst.
//
// The module loader resolves only exported symbols. A patch that uses a
// static function or a non-exported variable of vmlinux leaves an undefined
// symbol the loader would refuse. For each such symbol NAME this pass
//  - renames it .klp.sym.vmlinux.NAME,POS (symbols the build already named
//    .klp.sym.OBJECT.NAME,POS keep their name and object) and marks it SHN_LIVEPATCH (the
//    loader skips it; livepatch looks NAME up in kallsyms, POS picking among
//    duplicates, 0 for a unique name), keeping its index in .symtab;
//  - moves every relocation against it out of .rela.SECTION into a new
//    section .klp.rela.vmlinux.SECTION flagged SHF_RELA_LIVEPATCH | SHF_ALLOC,
//    which the module loader applies itself, through livepatch, before it
//    processes jump labels, static calls, alternatives or exception tables
//    (Linux 5.8 and later); so relocations from those sections convert too.
// A module's symbols (.klp.sym.MODULE.*) go to .klp.rela.MODULE.SECTION,
// which livepatch applies when that module loads (at once if it is loaded):
// too late for those sections, so the pass refuses such references there.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace graft::kernel {

struct KlpConversion {
  std::vector<std::string> livepatch_symbols;  // the .klp.sym.* names
  size_t relocations_moved = 0;
};

// The symbols the module leaves undefined.
std::vector<std::string> undefined_symbols(const std::string& module_path);

// The livepatch name of OBJECT's symbol NAME at kallsyms position POS:
// .klp.sym.OBJECT.NAME,POS (OBJECT vmlinux or a module).
std::string livepatch_symbol_name(const std::string& name, unsigned pos, const std::string& object = "vmlinux");
// OBJECT of a .klp.sym.OBJECT.NAME,POS name; "" if it is not one.
std::string livepatch_symbol_object(const std::string& klp_name);

// Converts the undefined symbols named in `livepatch_names` (name -> its
// .klp.sym.OBJECT.NAME,POS name; a .klp.sym name maps to itself) and their
// relocations; adds `manifest` as the non-allocated section
// `manifest_section` (manifest.h).
KlpConversion convert_to_livepatch_module(const std::string& module_path,
                                          const std::map<std::string, std::string>& livepatch_names,
                                          const std::string& manifest_section, const std::string& manifest);

}  // namespace graft::kernel
