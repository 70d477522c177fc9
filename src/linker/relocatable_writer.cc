#include "linker/relocatable_writer.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <deque>
#include <map>

#include "common/error.h"
#include "common/unique_resource.h"

namespace graft {

namespace {

struct StringTable {
  std::string bytes{'\0'};
  std::map<std::string, size_t> at;
  size_t add(const std::string& s) {
    if (s.empty()) return 0;
    if (auto it = at.find(s); it != at.end()) return it->second;
    size_t offset = bytes.size();
    bytes += s;
    bytes.push_back('\0');
    return at[s] = offset;
  }
};

bool written_anew(const ElfSection& s) {
  return s.type == SHT_RELA || s.type == SHT_REL || s.type == SHT_SYMTAB || s.type == SHT_STRTAB ||
         s.type == SHT_GROUP || s.type == SHT_NULL;
}

}  // namespace

void write_relocatable(const RelocatableObject& o, const std::string& path) {
  elf_version(EV_CURRENT);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", path, errno_text(errno));
  UniqueFd owner(fd);
  Elf* elf = elf_begin(fd, ELF_C_WRITE, nullptr);
  if (!elf) fail("{}: {}", path, elf_errmsg(-1));
  UniqueHandle<Elf, elf_end> elf_owner(elf);
  std::deque<Bytes> buffers;  // must outlive elf_update()

  if (!gelf_newehdr(elf, ELFCLASS64)) fail("{}: {}", path, elf_errmsg(-1));
  GElf_Ehdr eh;
  gelf_getehdr(elf, &eh);
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
  eh.e_type = ET_REL;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  gelf_update_ehdr(elf, &eh);

  StringTable shstr;
  auto add_section = [&](const std::string& name, GElf_Shdr sh, Bytes bytes, Elf_Type type) {
    Elf_Scn* scn = elf_newscn(elf);
    if (!scn) fail("{}: cannot add section {}: {}", path, name, elf_errmsg(-1));
    Elf_Data* d = elf_newdata(scn);
    Bytes& b = buffers.emplace_back(std::move(bytes));
    d->d_buf = b.empty() ? nullptr : b.data();
    d->d_size = sh.sh_type == SHT_NOBITS ? sh.sh_size : b.size();
    d->d_type = type;
    d->d_align = sh.sh_addralign ? sh.sh_addralign : 1;
    d->d_version = EV_CURRENT;
    sh.sh_name = uint32_t(shstr.add(name));
    if (!gelf_update_shdr(scn, &sh)) fail("{}: cannot write section {}: {}", path, name, elf_errmsg(-1));
    return elf_ndxscn(scn);
  };

  // Content sections, in order.
  std::map<size_t, size_t> section_index;  // input -> output
  for (size_t i = 1; i < o.sections.size(); ++i) {
    const ElfSection& s = o.sections[i];
    if (written_anew(s)) continue;
    GElf_Shdr sh{};
    sh.sh_type = s.type;
    sh.sh_flags = s.flags & ~uint64_t(SHF_GROUP | SHF_INFO_LINK | SHF_LINK_ORDER);
    sh.sh_addralign = s.align;
    sh.sh_entsize = s.entsize;
    sh.sh_size = s.type == SHT_NOBITS ? s.size : o.contents[i].size();
    section_index[i] = add_section(s.name, sh, s.type == SHT_NOBITS ? Bytes{} : o.contents[i], ELF_T_BYTE);
  }

  // Symbols: locals first. A symbol of a dropped section is an error of the
  // caller, not something to guess about.
  std::vector<uint32_t> symbol_index(o.symbols.size(), 0);
  std::vector<uint32_t> order;
  for (int pass = 0; pass < 2; ++pass)
    for (uint32_t i = 1; i < o.symbols.size(); ++i)
      if ((o.symbols[i].bind == STB_LOCAL) == (pass == 0)) order.push_back(i);
  StringTable str;
  Bytes symtab(sizeof(Elf64_Sym), 0);
  uint32_t first_global = 1;
  for (uint32_t i : order) {
    const ElfSymbol& s = o.symbols[i];
    Elf64_Sym e{};
    e.st_name = uint32_t(s.type == STT_SECTION ? 0 : str.add(s.name));
    e.st_info = ELF64_ST_INFO(s.bind, s.type);
    e.st_other = s.visibility;
    e.st_value = s.value;
    e.st_size = s.size;
    if (s.shndx == SHN_UNDEF || s.shndx >= SHN_LORESERVE) {
      e.st_shndx = s.shndx;
    } else {
      auto it = section_index.find(s.shndx);
      if (it == section_index.end())
        fail("{}: symbol `{}' is defined in section {}, which is not written", o.name, s.name, s.shndx);
      e.st_shndx = uint16_t(it->second);
    }
    symbol_index[i] = uint32_t(symtab.size() / sizeof(Elf64_Sym));
    if (s.bind == STB_LOCAL) first_global = symbol_index[i] + 1;
    const auto* p = reinterpret_cast<const uint8_t*>(&e);
    symtab.insert(symtab.end(), p, p + sizeof e);
  }
  size_t strtab_index = 0, symtab_index = 0;
  {
    GElf_Shdr sh{};
    sh.sh_type = SHT_STRTAB;
    sh.sh_addralign = 1;
    strtab_index = add_section(".strtab", sh, Bytes(str.bytes.begin(), str.bytes.end()), ELF_T_BYTE);
  }
  {
    GElf_Shdr sh{};
    sh.sh_type = SHT_SYMTAB;
    sh.sh_addralign = 8;
    sh.sh_entsize = sizeof(Elf64_Sym);
    sh.sh_link = uint32_t(strtab_index);
    sh.sh_info = first_global;
    symtab_index = add_section(".symtab", sh, std::move(symtab), ELF_T_SYM);
  }
  for (const auto& [target, relas] : o.relocations) {
    if (relas.empty()) continue;
    auto it = section_index.find(target);
    if (it == section_index.end()) fail("{}: relocations for section {}, which is not written", o.name, target);
    Bytes bytes;
    for (const auto& r : relas) {
      if (r.symbol >= symbol_index.size() || (r.symbol && !symbol_index[r.symbol]))
        fail("{}: a relocation of {} refers to symbol {}, which is not written", o.name,
             o.sections[target].name, r.symbol);
      Elf64_Rela e{r.offset, ELF64_R_INFO(symbol_index[r.symbol], r.type), r.addend};
      const auto* p = reinterpret_cast<const uint8_t*>(&e);
      bytes.insert(bytes.end(), p, p + sizeof e);
    }
    GElf_Shdr sh{};
    sh.sh_type = SHT_RELA;
    sh.sh_flags = SHF_INFO_LINK;
    sh.sh_addralign = 8;
    sh.sh_entsize = sizeof(Elf64_Rela);
    sh.sh_link = uint32_t(symtab_index);
    sh.sh_info = uint32_t(it->second);
    add_section(".rela" + o.sections[target].name, sh, std::move(bytes), ELF_T_RELA);
  }
  GElf_Shdr sh{};
  sh.sh_type = SHT_STRTAB;
  sh.sh_addralign = 1;
  size_t shstr_index = elf_ndxscn(elf_newscn(elf));
  shstr.add(".shstrtab");
  {
    Elf_Scn* scn = elf_getscn(elf, shstr_index);
    Elf_Data* d = elf_newdata(scn);
    Bytes& b = buffers.emplace_back(shstr.bytes.begin(), shstr.bytes.end());
    d->d_buf = b.data();
    d->d_size = b.size();
    d->d_type = ELF_T_BYTE;
    d->d_align = 1;
    d->d_version = EV_CURRENT;
    sh.sh_name = uint32_t(shstr.at.at(".shstrtab"));
    gelf_update_shdr(scn, &sh);
  }
  if (shstr_index >= SHN_LORESERVE) fail("{}: too many sections", path);
  gelf_getehdr(elf, &eh);
  eh.e_shstrndx = uint16_t(shstr_index);
  gelf_update_ehdr(elf, &eh);
  if (elf_update(elf, ELF_C_WRITE) < 0) fail("{}: cannot write: {}", path, elf_errmsg(-1));
}

}  // namespace graft
