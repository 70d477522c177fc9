#include "consistency/unwind_tables.h"

#include <elf.h>
#include <gelf.h>
#include <libelf.h>

#include <cstring>

#include "common/address_range.h"
#include "common/hash.h"
#include "common/error.h"
#include "common/unique_resource.h"
#include "elf/eh_frame_table.h"
#include "elf/elf_file.h"

namespace graft {

namespace {
// .eh_frame_hdr encodings (LSB 5.0): the only table layout we accept is the
// one every toolchain emits: udata4 count, datarel|sdata4 entries.
constexpr uint8_t kPeUdata4 = 0x03, kPeSdata4 = 0x0b, kPePcrel = 0x10, kPeDatarel = 0x30;
constexpr uint32_t kMaxFdes = 1u << 24;
constexpr const char* kGraftRegion = "/memfd:graft:";
// Indexes graft builds are served at non-canonical addresses (no process
// can map them), 4 GiB apart, one slot per object.
constexpr uint64_t kSyntheticBase = 0x4000'0000'0000'0000;
constexpr uint64_t kMaxEhFrame = 64u << 20;
}  // namespace

UnwindTables::UnwindTables(pid_t pid, const ProcessMemory& memory) : memory_(memory) {
  auto maps = read_maps(pid);
  for (const Mapping& m : maps) {
    // A memfd (graft's own regions among them) may be written through
    // another mapping; a deleted file may be a JIT's.
    bool plain_file = !m.path.empty() && m.path[0] == '/' && m.path.rfind("/memfd:", 0) != 0 &&
                      m.path.find(" (deleted)") == std::string::npos;
    if (plain_file && !m.write && !m.exec && !m.shared)
      read_only_files_.push_back({m.start, m.end - m.start});
  }
  for (size_t i = 0; i < maps.size(); ++i) {
    const Mapping& m = maps[i];
    if (!m.exec || m.path.empty() || m.path == "[vsyscall]") continue;
    if (m.path[0] != '/' && m.path != "[vdso]") continue;
    if (m.path.rfind(kGraftRegion, 0) == 0) {
      // Patch code: its unwind index starts the next (rodata) mapping.
      Object o;
      o.exec_start = m.start;
      o.exec_end = m.end;
      o.graft = true;
      if (i + 1 < maps.size() && maps[i + 1].start == m.end && maps[i + 1].path == m.path)
        o.hdr = m.end;
      objects_.push_back(o);
      continue;
    }
    // The object's ELF header is in its first mapping of the same file.
    uint64_t base = m.start - m.offset;
    for (size_t j = i + 1; j-- > 0;)
      if (maps[j].path == m.path && maps[j].inode == m.inode && maps[j].offset == 0) {
        base = maps[j].start;
        break;
      }
    Object o;
    o.exec_start = m.start;
    o.exec_end = m.end;
    o.base = base;
    o.path = m.path;
    if (m.path[0] == '/') o.file = m.map_file(pid);
    objects_.push_back(o);
  }
}

std::optional<uint64_t> eh_frame_hdr_address(std::span<const uint8_t> first_page, uint64_t base) {
  if (elf_version(EV_CURRENT) == EV_NONE) return std::nullopt;
  // libelf reads from a copy: it may keep pointers into the buffer.
  Bytes page(first_page.begin(), first_page.end());
  UniqueHandle<Elf, elf_end> owner(elf_memory(reinterpret_cast<char*>(page.data()), page.size()));
  Elf* elf = owner.get();
  if (!elf) return std::nullopt;
  GElf_Ehdr eh;
  size_t nphdr = 0;
  uint64_t eh_frame_vaddr = 0, first_load = UINT64_MAX;
  bool have_hdr = false;
  if (gelf_getehdr(elf, &eh) && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
      elf_getphdrnum(elf, &nphdr) == 0 && eh.e_phoff <= page.size() &&
      nphdr <= (page.size() - eh.e_phoff) / sizeof(Elf64_Phdr)) {
    for (size_t i = 0; i < nphdr; ++i) {
      GElf_Phdr ph;
      if (!gelf_getphdr(elf, i, &ph)) continue;
      if (ph.p_type == PT_LOAD) first_load = std::min(first_load, ph.p_vaddr & ~(kPageSize - 1));
      if (ph.p_type == PT_GNU_EH_FRAME) {
        eh_frame_vaddr = ph.p_vaddr;
        have_hdr = true;
      }
    }
  }
  uint16_t type = gelf_getehdr(elf, &eh) ? eh.e_type : 0;
  if (!have_hdr || first_load == UINT64_MAX) return std::nullopt;
  uint64_t bias = type == ET_EXEC ? 0 : base - first_load;
  return bias + eh_frame_vaddr;
}

std::optional<unw_dyn_info_t> remote_table(std::span<const uint8_t, 12> h, uint64_t hdr,
                                           uint64_t exec_start, uint64_t exec_end) {
  if (h[0] != 1 || h[1] != (kPePcrel | kPeSdata4) || h[2] != kPeUdata4 ||
      h[3] != (kPeDatarel | kPeSdata4))
    return std::nullopt;
  uint32_t fde_count;
  std::memcpy(&fde_count, h.data() + 8, 4);
  if (fde_count == 0 || fde_count > kMaxFdes) return std::nullopt;
  // The table must not wrap around the address space.
  uint64_t table_bytes = uint64_t(fde_count) * 8;
  if (hdr > UINT64_MAX - 12 - table_bytes) return std::nullopt;
  unw_dyn_info_t info{};
  info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
  info.start_ip = exec_start;
  info.end_ip = exec_end;
  info.gp = 0;
  info.u.rti.name_ptr = 0;
  info.u.rti.segbase = hdr;
  info.u.rti.table_data = hdr + 12;
  info.u.rti.table_len = table_bytes / sizeof(unw_word_t);
  return info;
}

void UnwindTables::load(Object& o, size_t slot) {
  o.loaded = true;
  if (o.graft) {
    if (o.hdr) use_eh_frame_hdr(o, o.hdr);
    return;
  }
  Bytes page(kPageSize);
  if (!memory_.try_read({o.base}, page.data(), page.size())) return;
  if (auto hdr = eh_frame_hdr_address(page, o.base))
    use_eh_frame_hdr(o, *hdr);
  else
    use_eh_frame(o, slot);
}

void UnwindTables::use_eh_frame(Object& o, size_t slot) {
  if (o.file.empty()) return;
  try {
    ElfFile file(o.file);
    const ElfSection* eh = file.section(".eh_frame");
    if (!eh || eh->type != SHT_PROGBITS || eh->size == 0 || eh->size > kMaxEhFrame) return;
    uint64_t first_load = UINT64_MAX;
    for (const auto& seg : file.load_segments()) first_load = std::min(first_load, seg.vaddr & ~(kPageSize - 1));
    if (first_load == UINT64_MAX) return;
    uint64_t bias = file.type() == ET_EXEC ? 0 : o.base - first_load;
    uint64_t addr = eh->addr + bias;
    // The section as the process has it, not as the file says.
    Bytes data(eh->size);
    if (!memory_.try_read({addr}, data.data(), data.size())) return;
    std::vector<uint8_t> index;
    for (const FdeEntry& e : eh_frame_table(data, addr)) {
      // Entries are 32-bit offsets from the section (the header's layout).
      int64_t pc = static_cast<int64_t>(e.pc - addr), fde = static_cast<int64_t>(e.fde - addr);
      if (pc != static_cast<int32_t>(pc) || fde != static_cast<int32_t>(fde)) return;
      int32_t row[2] = {static_cast<int32_t>(pc), static_cast<int32_t>(fde)};
      index.insert(index.end(), reinterpret_cast<uint8_t*>(row), reinterpret_cast<uint8_t*>(row) + sizeof row);
    }
    if (index.empty() || index.size() / 8 > kMaxFdes) return;
    o.index = std::move(index);
    o.index_addr = kSyntheticBase + (static_cast<uint64_t>(slot) << 32);
    unw_dyn_info_t info{};
    info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    info.start_ip = o.exec_start;
    info.end_ip = o.exec_end;
    info.u.rti.segbase = addr;
    info.u.rti.table_data = o.index_addr;
    info.u.rti.table_len = o.index.size() / sizeof(unw_word_t);
    o.info = info;
    o.valid = true;
  } catch (const Error&) {
    // Unreadable or not ELF: no unwind information, as without an index.
  }
}

std::string UnwindTables::file_at(uint64_t ip) const {
  for (const auto& o : objects_)
    if (ip >= o.exec_start && ip < o.exec_end) return o.graft ? "graft's patch code" : o.path;
  return {};
}

bool UnwindTables::read_synthetic(uint64_t addr, uint64_t* val) const {
  if (addr < kSyntheticBase) return false;
  for (const auto& o : objects_) {
    if (o.index.empty() || addr < o.index_addr || addr - o.index_addr >= o.index.size()) continue;
    uint64_t at = addr - o.index_addr;
    *val = 0;
    std::memcpy(val, o.index.data() + at, std::min<uint64_t>(sizeof *val, o.index.size() - at));
    return true;
  }
  return false;
}

void UnwindTables::use_eh_frame_hdr(Object& o, uint64_t hdr) {
  uint8_t h[12];
  if (!memory_.try_read({hdr}, h, sizeof h)) return;
  if (auto info = remote_table(std::span<const uint8_t, 12>(h), hdr, o.exec_start, o.exec_end)) {
    o.info = *info;
    o.valid = true;
  }
}

unw_dyn_info_t* UnwindTables::find(uint64_t ip) {
  for (size_t i = 0; i < objects_.size(); ++i) {
    Object& o = objects_[i];
    if (ip < o.exec_start || ip >= o.exec_end) continue;
    if (!o.loaded) load(o, i);
    return o.valid ? &o.info : nullptr;
  }
  return nullptr;
}

}  // namespace graft
