#include "kernel/klp_convert.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <set>
#include <string_view>

#include "common/error.h"
#include "elf/elf_file.h"

namespace graft::kernel {

namespace {

constexpr uint16_t kShnLivepatch = 0xff20;
constexpr uint64_t kShfRelaLivepatch = 0x00100000;
constexpr std::string_view kVmlinuxPrefix = ".klp.sym.vmlinux.";

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Owns the file descriptor and libelf handle, and every buffer handed to
// libelf, which must outlive elf_update().
struct ModuleFile {
  std::string path;
  int fd = -1;
  Elf* elf = nullptr;
  std::deque<std::string> buffers;

  explicit ModuleFile(const std::string& p) : path(p) {
    elf_version(EV_CURRENT);
    fd = open(p.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fail("cannot open {}: {}", p, errno_text(errno));
    elf = elf_begin(fd, ELF_C_RDWR, nullptr);
    if (!elf || elf_kind(elf) != ELF_K_ELF) fail("{}: not an ELF file: {}", p, elf_errmsg(-1));
    GElf_Ehdr eh;
    if (!gelf_getehdr(elf, &eh) || eh.e_type != ET_REL || eh.e_machine != EM_X86_64 ||
        gelf_getclass(elf) != ELFCLASS64)
      fail("{}: not an x86-64 relocatable object (a kernel module)", p);
  }
  ~ModuleFile() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }

  GElf_Shdr header(Elf_Scn* scn) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) fail("{}: bad section header: {}", path, elf_errmsg(-1));
    return sh;
  }
  Elf_Data* data(Elf_Scn* scn) {
    Elf_Data* d = elf_getdata(scn, nullptr);
    if (!d) fail("{}: section {} has no data: {}", path, elf_ndxscn(scn), elf_errmsg(-1));
    if (elf_getdata(scn, d)) fail("{}: section {} has several data blocks", path, elf_ndxscn(scn));
    return d;
  }
  // Appends a NUL-terminated string to a string table; returns its offset.
  size_t append_string(Elf_Scn* strtab, const std::string& s) {
    Elf_Data* d = data(strtab);
    std::string& buf = buffers.emplace_back(static_cast<const char*>(d->d_buf), d->d_size);
    size_t offset = buf.size();
    buf += s;
    buf.push_back('\0');
    d->d_buf = buf.data();
    d->d_size = buf.size();
    elf_flagdata(d, ELF_C_SET, ELF_F_DIRTY);
    return offset;
  }
  Elf_Scn* new_section(Elf_Scn* shstrtab, const std::string& name, GElf_Shdr sh, std::string bytes,
                       Elf_Type type) {
    sh.sh_name = append_string(shstrtab, name);
    Elf_Scn* scn = elf_newscn(elf);
    if (!scn) fail("{}: cannot add section {}: {}", path, name, elf_errmsg(-1));
    Elf_Data* d = elf_newdata(scn);
    std::string& buf = buffers.emplace_back(std::move(bytes));
    d->d_buf = buf.data();
    d->d_size = buf.size();
    d->d_type = type;
    d->d_align = sh.sh_addralign;
    d->d_version = EV_CURRENT;
    if (!gelf_update_shdr(scn, &sh)) fail("{}: cannot write section {}: {}", path, name, elf_errmsg(-1));
    return scn;
  }
};

// Sections the kernel reads while it loads the module. The loader applies
// .klp.rela.vmlinux.* relocations before it processes them (Linux 5.8 and
// later), so vmlinux symbols are resolved in time; a symbol of another
// module is resolved only when that module loads, too late for these.
bool processed_at_load(const std::string& name) {
  static const std::set<std::string> names = {
      "__jump_table", ".static_call_sites", ".altinstructions", ".altinstr_replacement",
      "__ex_table", ".retpoline_sites", ".return_sites", "__bug_table", "__mcount_loc",
      ".smp_locks", ".parainstructions", ".init_array", "__param", "__ksymtab", "__ksymtab_gpl"};
  return names.count(name) != 0;
}

}  // namespace

std::vector<std::string> undefined_symbols(const std::string& module_path) {
  ElfFile elf(module_path);
  std::vector<std::string> out;
  for (const auto& s : elf.symbols())
    if (!s.defined() && !s.name.empty()) out.push_back(s.name);
  return out;
}

std::string livepatch_symbol_name(const std::string& name, unsigned pos, const std::string& object) {
  return fmt::format(".klp.sym.{}.{},{}", object, name, pos);
}

std::string livepatch_symbol_object(const std::string& klp_name) {
  const std::string head = ".klp.sym.";
  if (klp_name.rfind(head, 0) != 0) return "";
  size_t dot = klp_name.find('.', head.size());
  return dot == std::string::npos ? "" : klp_name.substr(head.size(), dot - head.size());
}

KlpConversion convert_to_livepatch_module(const std::string& module_path,
                                          const std::map<std::string, std::string>& livepatch_names,
                                          const std::string& manifest_section, const std::string& manifest) {
  ModuleFile m(module_path);
  size_t shstrndx;
  if (elf_getshdrstrndx(m.elf, &shstrndx) != 0) fail("{}: no section name table", module_path);
  Elf_Scn* shstrtab = elf_getscn(m.elf, shstrndx);

  Elf_Scn* symtab = nullptr;
  for (Elf_Scn* scn = elf_nextscn(m.elf, nullptr); scn; scn = elf_nextscn(m.elf, scn))
    if (m.header(scn).sh_type == SHT_SYMTAB) symtab = scn;
  if (!symtab) fail("{}: no symbol table", module_path);
  GElf_Shdr symtab_header = m.header(symtab);
  Elf_Scn* strtab = elf_getscn(m.elf, symtab_header.sh_link);
  if (!strtab) fail("{}: symbol table without string table", module_path);
  size_t symtab_index = elf_ndxscn(symtab);
  Elf_Data* syms = m.data(symtab);
  size_t count = syms->d_size / sizeof(Elf64_Sym);

  KlpConversion result;
  std::map<size_t, std::string> livepatch_symbols;  // symbol index -> .klp.sym name
  for (size_t i = 1; i < count; ++i) {
    GElf_Sym sym;
    if (!gelf_getsym(syms, int(i), &sym)) fail("{}: bad symbol {}", module_path, i);
    if (sym.st_shndx != SHN_UNDEF || sym.st_name == 0) continue;
    const char* name = elf_strptr(m.elf, symtab_header.sh_link, sym.st_name);
    if (!name || !*name) fail("{}: symbol {} has no name", module_path, i);
    auto named = livepatch_names.find(name);
    if (named == livepatch_names.end()) continue;
    const std::string& klp_name = named->second;
    if (livepatch_symbol_object(klp_name).empty())
      fail("{}: symbol {} is to be renamed {}, not a .klp.sym.OBJECT.NAME,POS name", module_path, name, klp_name);
    if (klp_name.size() > 9 + 56 + 512) fail("{}: symbol name {} is too long for livepatch", module_path, name);
    sym.st_name = m.append_string(strtab, klp_name);
    sym.st_shndx = kShnLivepatch;
    sym.st_info = GELF_ST_INFO(STB_GLOBAL, GELF_ST_TYPE(sym.st_info));
    if (!gelf_update_sym(syms, int(i), &sym)) fail("{}: cannot rewrite symbol {}", module_path, name);
    livepatch_symbols.emplace(i, klp_name);
    result.livepatch_symbols.push_back(klp_name);
  }
  elf_flagdata(syms, ELF_C_SET, ELF_F_DIRTY);

  // Collect first, add sections after: elf_newscn during the walk would
  // change the list being walked.
  // Livepatch resolves a .klp.rela.OBJECT.* section when OBJECT is there
  // (vmlinux at once, a module when it loads) and refuses one whose
  // symbols belong to another object: one section per target and object.
  struct Moved {
    size_t target;
    std::string target_name;
    std::string object;
    std::string relas;
  };
  std::vector<Moved> moved;
  for (Elf_Scn* scn = elf_nextscn(m.elf, nullptr); scn; scn = elf_nextscn(m.elf, scn)) {
    GElf_Shdr sh = m.header(scn);
    if (sh.sh_type != SHT_RELA || sh.sh_link != symtab_index) continue;
    Elf_Scn* target = elf_getscn(m.elf, sh.sh_info);
    if (!target) fail("{}: relocation section {} without target", module_path, elf_ndxscn(scn));
    GElf_Shdr target_sh = m.header(target);
    const char* tname = elf_strptr(m.elf, shstrndx, target_sh.sh_name);
    std::string target_name = tname ? tname : "?";
    Elf_Data* d = m.data(scn);
    size_t n = d->d_size / sizeof(Elf64_Rela);
    std::string kept;
    std::map<std::string, std::string> klp;  // object -> relocations
    for (size_t i = 0; i < n; ++i) {
      GElf_Rela r;
      if (!gelf_getrela(d, int(i), &r)) fail("{}: bad relocation {} of {}", module_path, i, target_name);
      size_t s = GELF_R_SYM(r.r_info);
      Elf64_Rela raw{r.r_offset, r.r_info, r.r_addend};
      std::string bytes(reinterpret_cast<const char*>(&raw), sizeof raw);
      auto klp_sym = livepatch_symbols.find(s);
      if (klp_sym == livepatch_symbols.end()) {
        kept += bytes;
        continue;
      }
      if (!(target_sh.sh_flags & SHF_ALLOC)) continue;  // debug info: the loader ignores it
      if (processed_at_load(target_name) && !starts_with(klp_sym->second, kVmlinuxPrefix))
        fail("{}: section {} refers to the module symbol {}: the kernel reads {} when it loads the "
             "patch, and livepatch resolves a module's symbols only when that module loads",
             module_path, target_name, klp_sym->second, target_name);
      std::string object = livepatch_symbol_object(klp_sym->second);
      if (object.empty()) fail("{}: symbol {} is not named .klp.sym.OBJECT.NAME,POS", module_path, klp_sym->second);
      klp[object] += bytes;
      ++result.relocations_moved;
    }
    if (klp.empty()) continue;
    std::string& buf = m.buffers.emplace_back(std::move(kept));
    d->d_buf = buf.data();
    d->d_size = buf.size();
    elf_flagdata(d, ELF_C_SET, ELF_F_DIRTY);
    for (auto& [object, relas] : klp) moved.push_back({sh.sh_info, target_name, object, std::move(relas)});
  }
  for (auto& mv : moved) {
    GElf_Shdr sh{};
    sh.sh_type = SHT_RELA;
    sh.sh_flags = SHF_ALLOC | SHF_INFO_LINK | kShfRelaLivepatch;
    sh.sh_link = uint32_t(symtab_index);
    sh.sh_info = uint32_t(mv.target);
    sh.sh_addralign = 8;
    sh.sh_entsize = sizeof(Elf64_Rela);
    // .klp.rela.OBJECT.SECTION: livepatch reads OBJECT up to the next '.',
    // so a section without a leading dot (__tracepoints) needs one.
    std::string dot = starts_with(mv.target_name, ".") ? "" : ".";
    m.new_section(shstrtab, ".klp.rela." + mv.object + dot + mv.target_name, sh, std::move(mv.relas), ELF_T_RELA);
  }
  GElf_Shdr msh{};
  msh.sh_type = SHT_PROGBITS;
  msh.sh_addralign = 1;
  m.new_section(shstrtab, manifest_section, msh, manifest, ELF_T_BYTE);
  if (elf_update(m.elf, ELF_C_WRITE) < 0) fail("{}: cannot write: {}", module_path, elf_errmsg(-1));
  return result;
}

}  // namespace graft::kernel
