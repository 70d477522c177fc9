#include "elf/elf_headers.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/hash.h"
#include "common/unique_resource.h"

namespace graft {

namespace {

bool read_at(int fd, void* buf, size_t size, uint64_t offset) {
  return pread(fd, buf, size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size);
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// The GNU build-id note among the notes of `data` (aligned to `align`).
std::optional<std::string> build_id_in(const std::vector<uint8_t>& data, uint64_t align) {
  uint64_t off = 0;
  while (off + sizeof(Elf64_Nhdr) <= data.size()) {
    Elf64_Nhdr nh;
    std::memcpy(&nh, data.data() + off, sizeof nh);
    uint64_t name = off + sizeof nh;
    uint64_t desc = name + align_up(nh.n_namesz, align);
    uint64_t next = desc + align_up(nh.n_descsz, align);
    if (desc > data.size() || nh.n_descsz > data.size() - desc) return std::nullopt;
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(data.data() + name, "GNU", 4) == 0 &&
        nh.n_descsz > 0 && nh.n_descsz <= 64)
      return to_hex({data.data() + desc, nh.n_descsz});
    if (next <= off) return std::nullopt;
    off = next;
  }
  return std::nullopt;
}

}  // namespace

std::optional<ElfHeaders> read_elf_headers(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  Elf64_Ehdr eh;
  if (!read_at(fd.get(), &eh, sizeof eh, 0) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return std::nullopt;
  // PN_XNUM (the count in section 0) and odd sizes: left to libelf.
  constexpr size_t kMaxPhdrs = 1024;
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum >= PN_XNUM || eh.e_phnum > kMaxPhdrs) return std::nullopt;
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  if (!phdrs.empty() && !read_at(fd.get(), phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr), eh.e_phoff))
    return std::nullopt;
  ElfHeaders out;
  out.type = eh.e_type;
  out.machine = eh.e_machine;
  for (const auto& ph : phdrs) {
    if (ph.p_type == PT_LOAD) out.load_segments.push_back({ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz, ph.p_flags});
    constexpr uint64_t kMaxNotes = 1 << 16;
    if (ph.p_type != PT_NOTE || out.build_id || ph.p_filesz == 0 || ph.p_filesz > kMaxNotes) continue;
    std::vector<uint8_t> notes(ph.p_filesz);
    if (!read_at(fd.get(), notes.data(), notes.size(), ph.p_offset)) continue;
    out.build_id = build_id_in(notes, ph.p_align == 8 ? 8 : 4);
  }
  return out;
}

}  // namespace graft
