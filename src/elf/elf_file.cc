#include "elf/elf_file.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "elf/elf_headers.h"
#include "elf/separate_debug.h"

namespace graft {

namespace {

void init_libelf() {
  static bool done = [] {
    if (elf_version(EV_CURRENT) == EV_NONE) fail("libelf: {}", elf_errmsg(-1));
    return true;
  }();
  (void)done;
}

std::optional<std::string> build_id_of(Elf* elf) {
  size_t nphdr = 0;
  if (elf_getphdrnum(elf, &nphdr) != 0) return std::nullopt;
  for (size_t i = 0; i < nphdr; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, i, &ph) || ph.p_type != PT_NOTE) continue;
    Elf_Data* data = elf_getdata_rawchunk(elf, ph.p_offset, ph.p_filesz, ELF_T_NHDR);
    if (!data) continue;
    size_t off = 0, name_off, desc_off;
    GElf_Nhdr nh;
    while (off < data->d_size && (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          std::memcmp(static_cast<char*>(data->d_buf) + name_off, "GNU", 4) == 0 &&
          nh.n_descsz > 0 && nh.n_descsz <= 64) {
        auto* p = static_cast<const uint8_t*>(data->d_buf) + desc_off;
        return to_hex({p, nh.n_descsz});
      }
    }
  }
  return std::nullopt;
}

}  // namespace

ElfFile::ElfFile(const std::string& path, std::string display)
    : path_(path), name_(display.empty() ? path : std::move(display)) {
  init_libelf();
  fd_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd_) fail("{}: {}", name_, errno_text(errno));
  elf_owner_.reset(elf_begin(fd_.get(), ELF_C_READ_MMAP, nullptr));
  elf_ = elf_owner_.get();
  if (!elf_ || elf_kind(elf_) != ELF_K_ELF) fail("{}: not an ELF file", name_);
  GElf_Ehdr eh;
  if (!gelf_getehdr(elf_, &eh) || gelf_getclass(elf_) != ELFCLASS64 || eh.e_machine != EM_X86_64) {
    fail("{}: not a 64-bit x86-64 ELF file", name_);
  }
  type_ = eh.e_type;

  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf_, &shstrndx) != 0) shstrndx = 0;
  for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn; scn = elf_nextscn(elf_, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    ElfSection s;
    s.index = elf_ndxscn(scn);
    const char* n = shstrndx ? elf_strptr(elf_, shstrndx, sh.sh_name) : nullptr;
    s.name = n ? n : "";
    s.type = sh.sh_type;
    s.flags = sh.sh_flags;
    s.addr = sh.sh_addr;
    s.size = sh.sh_size;
    s.align = sh.sh_addralign ? sh.sh_addralign : 1;
    s.link = sh.sh_link;
    s.info = sh.sh_info;
    s.entsize = sh.sh_entsize;
    sections_.push_back(std::move(s));
  }
}

const std::vector<ElfSymbol>& ElfFile::symbols() const {
  std::call_once(symbols_loaded_, [this] { load_symbols(); });
  return symtab_;
}

const std::string& ElfFile::symbols_file() const {
  symbols();
  return symbols_file_;
}

void ElfFile::load_symbols() const {
  for (const auto& s : sections_)
    if (s.type == SHT_SYMTAB) {
      symtab_ = read_symbols(s);
      symbols_file_ = path_;
      return;
    }
  if (type_ == ET_REL) return;
  auto debug = find_separate_debug_file(path_);
  if (!debug) return;
  ElfFile separate(*debug);
  // strip and objcopy --only-keep-debug keep the allocated sections at the
  // same index and address in both files; the rest (debug sections, the
  // tables) differ. A symbol's section is mapped by name and address, and a
  // debug file whose allocated sections do not line up was split from
  // another build.
  std::map<uint16_t, uint16_t> to_ours;
  for (const auto& mine : sections_) {
    if (!(mine.flags & SHF_ALLOC)) continue;
    const auto& theirs = separate.sections();
    bool found = false;
    for (const auto& t : theirs)
      if (t.name == mine.name && t.addr == mine.addr && t.size == mine.size) {
        to_ours[static_cast<uint16_t>(t.index)] = static_cast<uint16_t>(mine.index);
        found = true;
        break;
      }
    if (!found)
      fail("{}: its debug file {} has no section {} at {:#x}; it was split from another build",
           name_, *debug, mine.name, mine.addr);
  }
  for (const auto& table : separate.sections()) {
    if (table.type != SHT_SYMTAB) continue;
    auto symbols = separate.read_symbols(table);
    for (auto& sym : symbols) {
      if (sym.shndx == SHN_UNDEF || sym.shndx >= SHN_LORESERVE) continue;
      if (auto it = to_ours.find(sym.shndx); it != to_ours.end()) {
        sym.shndx = it->second;
      } else if (sym.shndx <= separate.sections().size() &&
                 (separate.sections()[sym.shndx - 1].flags & SHF_ALLOC)) {
        fail("{}: symbol `{}' of its debug file {} lies in section {}, which the file does "
             "not have",
             name_, sym.name, *debug, separate.sections()[sym.shndx - 1].name);
      } else {
        // In a section that is not loaded (.gnu.warning.*, debug
        // sections): nothing a patch can refer to.
        sym.shndx = SHN_UNDEF;
      }
    }
    symtab_ = std::move(symbols);
    symbols_file_ = *debug;
    return;
  }
}

ElfFile::~ElfFile() = default;

std::optional<std::string> ElfFile::build_id() const { return build_id_of(elf_); }

std::vector<LoadSegment> ElfFile::load_segments() const {
  std::vector<LoadSegment> out;
  size_t nphdr = 0;
  if (elf_getphdrnum(elf_, &nphdr) != 0) return out;
  for (size_t i = 0; i < nphdr; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf_, i, &ph) || ph.p_type != PT_LOAD) continue;
    out.push_back({ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz, ph.p_flags});
  }
  return out;
}

const ElfSection* ElfFile::section(const std::string& name) const {
  for (const auto& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

Bytes ElfFile::section_data(size_t index) const {
  Elf_Scn* scn = elf_getscn(elf_, index);
  if (!scn) fail("{}: no section {}", name_, index);
  GElf_Shdr sh;
  if (!gelf_getshdr(scn, &sh)) fail("{}: bad section header {}", name_, index);
  if (sh.sh_type == SHT_NOBITS) return {};
  Elf_Data* d = elf_rawdata(scn, nullptr);
  if (!d || d->d_size != sh.sh_size) fail("{}: section {} is truncated", name_, index);
  auto* p = static_cast<const uint8_t*>(d->d_buf);
  return Bytes(p, p + d->d_size);
}

std::vector<ElfRela> ElfFile::relocations(const ElfSection& rela) const {
  if (rela.type != SHT_RELA) fail("{}: section {} is not SHT_RELA", name_, rela.name);
  Elf_Data* d = elf_getdata(elf_getscn(elf_, rela.index), nullptr);
  if (!d) fail("{}: cannot read {}", name_, rela.name);
  std::vector<ElfRela> out;
  size_t n = d->d_size / sizeof(Elf64_Rela);
  for (size_t i = 0; i < n; ++i) {
    GElf_Rela r;
    if (!gelf_getrela(d, i, &r)) fail("{}: bad relocation {} in {}", name_, i, rela.name);
    out.push_back({r.r_offset, static_cast<uint32_t>(GELF_R_TYPE(r.r_info)),
                   static_cast<uint32_t>(GELF_R_SYM(r.r_info)), r.r_addend});
  }
  return out;
}

std::map<uint16_t, std::string> ElfFile::version_names() const {
  std::map<uint16_t, std::string> names;
  auto name_at = [&](const ElfSection& s, size_t offset) {
    const char* n = elf_strptr(elf_, s.link, offset);
    return std::string(n ? n : "");
  };
  for (const auto& s : sections_) {
    Elf_Data* d = nullptr;
    if (s.type == SHT_GNU_verdef || s.type == SHT_GNU_verneed)
      d = elf_getdata(elf_getscn(elf_, s.index), nullptr);
    if (!d) continue;
    // sh_info entries, chained by byte offsets; a bad chain just ends.
    size_t off = 0;
    for (uint32_t i = 0; i < s.info && off < d->d_size; ++i) {
      if (s.type == SHT_GNU_verdef) {
        GElf_Verdef vd;
        GElf_Verdaux aux;
        if (!gelf_getverdef(d, static_cast<int>(off), &vd)) break;
        if (vd.vd_cnt > 0 && gelf_getverdaux(d, static_cast<int>(off + vd.vd_aux), &aux))
          names[vd.vd_ndx & 0x7fff] = name_at(s, aux.vda_name);
        if (vd.vd_next == 0) break;
        off += vd.vd_next;
      } else {
        GElf_Verneed vn;
        if (!gelf_getverneed(d, static_cast<int>(off), &vn)) break;
        size_t aoff = off + vn.vn_aux;
        for (uint16_t k = 0; k < vn.vn_cnt && aoff < d->d_size; ++k) {
          GElf_Vernaux aux;
          if (!gelf_getvernaux(d, static_cast<int>(aoff), &aux)) break;
          names[aux.vna_other & 0x7fff] = name_at(s, aux.vna_name);
          if (aux.vna_next == 0) break;
          aoff += aux.vna_next;
        }
        if (vn.vn_next == 0) break;
        off += vn.vn_next;
      }
    }
  }
  return names;
}

std::vector<ElfSymbol> ElfFile::read_symbols(const ElfSection& table) const {
  Elf_Data* d = elf_getdata(elf_getscn(elf_, table.index), nullptr);
  if (!d) fail("{}: cannot read {}", name_, table.name);
  // Optional version table (only .dynsym has one).
  Elf_Data* versym = nullptr;
  for (const auto& s : sections_)
    if (s.type == SHT_GNU_versym && s.link == table.index)
      versym = elf_getdata(elf_getscn(elf_, s.index), nullptr);
  std::map<uint16_t, std::string> versions;
  if (versym) versions = version_names();

  size_t n = d->d_size / sizeof(Elf64_Sym);
  std::vector<ElfSymbol> out;
  out.reserve(n);
  std::string file;
  for (size_t i = 0; i < n; ++i) {
    GElf_Sym sym;
    if (!gelf_getsym(d, i, &sym)) fail("{}: bad symbol {} in {}", name_, i, table.name);
    ElfSymbol s;
    const char* nm = elf_strptr(elf_, table.link, sym.st_name);
    s.name = nm ? nm : "";
    s.value = sym.st_value;
    s.size = sym.st_size;
    s.type = GELF_ST_TYPE(sym.st_info);
    s.bind = GELF_ST_BIND(sym.st_info);
    s.visibility = GELF_ST_VISIBILITY(sym.st_other);
    s.shndx = sym.st_shndx;
    if (s.type == STT_FILE) file = s.name;
    if (s.bind == STB_LOCAL) s.file = file;
    if (versym) {
      GElf_Versym v;
      if (gelf_getversym(versym, i, &v)) {
        s.default_version = (v & 0x8000) == 0;
        // 0 and 1: local and global, unversioned.
        if (auto it = versions.find(v & 0x7fff); (v & 0x7fff) > 1 && it != versions.end())
          s.version = it->second;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<ElfSymbol> ElfFile::dynamic_symbols() const {
  for (const auto& s : sections_)
    if (s.type == SHT_DYNSYM) return read_symbols(s);
  return {};
}

Bytes ElfFile::read_vaddr(uint64_t vaddr, size_t size) const {
  for (const auto& seg : load_segments()) {
    if (vaddr < seg.vaddr || vaddr - seg.vaddr > seg.filesz || size > seg.filesz - (vaddr - seg.vaddr))
      continue;
    Bytes out(size);
    ssize_t got = pread(fd_.get(), out.data(), size, static_cast<off_t>(seg.offset + (vaddr - seg.vaddr)));
    if (got != static_cast<ssize_t>(size)) fail("{}: truncated at address {:#x}", name_, vaddr);
    return out;
  }
  fail("{}: address range {:#x}+{} is not in the file's loaded segments", name_, vaddr, size);
}

std::optional<std::string> read_build_id(const std::string& path) {
  if (auto headers = read_elf_headers(path)) return headers->build_id;
  init_libelf();
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  UniqueHandle<Elf, elf_end> elf(elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  std::optional<std::string> id;
  if (elf && elf_kind(elf.get()) == ELF_K_ELF) id = build_id_of(elf.get());
  return id;
}

std::string demangle(const std::string& name) {
  if (name.size() < 2 || name[0] != '_' || name[1] != 'Z') return {};
  int status = 0;
  char* d = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  if (status != 0 || !d) return {};
  std::string out(d);
  std::free(d);
  return out;
}

}  // namespace graft
