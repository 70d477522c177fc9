#include "kernel/kernel_image.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/error.h"

namespace graft::kernel {

KernelPaths KernelPaths::in_cache(const std::string& release, const std::string& cache_dir) {
  std::string cache = cache_dir;
  if (cache.empty()) {
    const char* env = std::getenv("GRAFT_KERNEL_CACHE");
    cache = env && *env ? env : "/var/cache/graft/kernel";
  }
  KernelPaths p;
  p.release = release;
  std::string root = cache + "/" + release + "/root";
  p.headers = root + "/usr/src/linux-headers-" + release;
  p.system_map = root + "/boot/System.map-" + release;
  p.image = cache + "/" + release + "/vmlinux";
  p.modules = root + "/lib/modules/" + release;
  return p;
}

namespace {

int32_t read_s32(const Bytes& b, size_t at) {
  int32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
uint64_t read_u64(const Bytes& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}

}  // namespace

KernelImage::KernelImage(KernelPaths paths)
    : paths_(std::move(paths)), symbols_(SymbolTable::read(paths_.system_map)) {
  if (symbols_.size() < 1000)
    fail("{} has only {} symbols: the image package's placeholder, not the real System.map "
         "(scripts/kernel/fetch.sh takes it from the -dbg package)",
         paths_.system_map, symbols_.size());
  exported_ = read_exported_symbols(paths_.headers + "/Module.symvers");
  image_ = std::make_unique<ElfFile>(paths_.image, "the kernel image " + paths_.image);
  auto need = [&](const char* name) {
    const KernelSymbol* s = symbols_.first(name);
    if (!s) fail("{}: no symbol {}", paths_.system_map, name);
    return s->address;
  };
  init_text_start_ = need("_sinittext");
  init_text_end_ = need("_einittext");
  image_start_ = need("_text");
  image_end_ = need("_end");
  const KernelSymbol* pcpu_start = symbols_.first("__per_cpu_start");
  const KernelSymbol* pcpu_end = symbols_.first("__per_cpu_end");
  if (pcpu_start && pcpu_end && pcpu_start->address < pcpu_end->address && pcpu_end->address < image_start_) {
    percpu_start_ = pcpu_start->address;
    percpu_end_ = pcpu_end->address;
  }
  // ftrace: the address of every __fentry__ call (absolute, 8 bytes each).
  uint64_t start = need("__start_mcount_loc"), stop = need("__stop_mcount_loc");
  Bytes table = image_->read_vaddr(start, stop - start);
  for (size_t i = 0; i + 8 <= table.size(); i += 8) ftrace_sites_.insert(read_u64(table, i));
  load_boot_patch_sites();
}

uint64_t KernelImage::anchor_address() const { return image_start_; }

void KernelImage::add_relative_sites(const char* start_sym, const char* stop_sym, size_t entry_size,
                                     const char* reason, bool has_length) {
  const KernelSymbol* a = symbols_.first(start_sym);
  const KernelSymbol* b = symbols_.first(stop_sym);
  if (!a || !b) return;  // this kernel has no such table
  Bytes table = image_->read_vaddr(a->address, b->address - a->address);
  for (size_t i = 0; i + entry_size <= table.size(); i += entry_size) {
    // Every table starts with an s32 offset from the entry to the code;
    // struct alt_instr has the length at byte 10 (instrlen).
    uint64_t site = a->address + i + int64_t(read_s32(table, i));
    uint32_t length = has_length ? table[i + 10] : 0;
    boot_patch_sites_.emplace_back(site, length, reason);
  }
}

void KernelImage::load_boot_patch_sites() {
  // struct alt_instr { s32 instr_offset, repl_offset; u16 cpuid; u8 instrlen, replacementlen; }
  add_relative_sites("__alt_instructions", "__alt_instructions_end", 12, "alternative", true);
  add_relative_sites("__retpoline_sites", "__retpoline_sites_end", 4, "retpoline thunk", false);
  add_relative_sites("__return_sites", "__return_sites_end", 4, "return thunk", false);
  // struct jump_entry { s32 code, target; long key; }
  add_relative_sites("__start___jump_table", "__stop___jump_table", 16, "jump label", false);
  // struct static_call_site { s32 addr, key; }
  add_relative_sites("__start_static_call_sites", "__stop_static_call_sites", 8, "static call", false);
  // One lock prefix each, which a kernel running on one CPU may turn into a no-op prefix.
  if (const KernelSymbol *a = symbols_.first("__smp_locks"), *b = symbols_.first("__smp_locks_end"); a && b) {
    Bytes table = image_->read_vaddr(a->address, b->address - a->address);
    for (size_t i = 0; i + 4 <= table.size(); i += 4)
      boot_patch_sites_.emplace_back(a->address + i + int64_t(read_s32(table, i)), 1, "lock prefix");
  }
  // struct paravirt_patch_site { u8 *instr; u8 type; u8 len; } (16 bytes, absolute pointer)
  if (const KernelSymbol *a = symbols_.first("__parainstructions"), *b = symbols_.first("__parainstructions_end");
      a && b) {
    Bytes table = image_->read_vaddr(a->address, b->address - a->address);
    for (size_t i = 0; i + 16 <= table.size(); i += 16)
      boot_patch_sites_.emplace_back(read_u64(table, i), table[i + 9], "paravirt");
  }
  std::sort(boot_patch_sites_.begin(), boot_patch_sites_.end());
}

FunctionFingerprint KernelImage::patchable_function(const std::string& name, unsigned pos) const {
  const KernelSymbol& sym = symbols_.resolve(name, pos);
  if (!sym.text())
    fail("cannot patch {}: it is not a function in {} (symbol type '{}')", name, paths_.system_map, sym.type);
  if (sym.address >= init_text_start_ && sym.address < init_text_end_)
    fail("cannot patch {}: it is __init code, freed after boot", name);
  if (!ftrace_sites_.count(sym.address))
    fail("cannot patch {}: it has no __fentry__ call at its entry (notrace, or not traceable), "
         "so livepatch cannot redirect it",
         name);
  const KernelSymbol* next = symbols_.next_after(sym.address);
  if (!next) fail("cannot patch {}: no symbol follows it in {}", name, paths_.system_map);
  FunctionFingerprint f;
  f.name = name;
  f.sympos = pos;
  f.address = sym.address;
  f.size = next->address - sym.address;
  f.next_symbol = next->name;
  if (f.size > (1u << 20)) fail("cannot check {}: {} bytes up to the next symbol {}", name, f.size, next->name);
  f.bytes = image_->read_vaddr(sym.address, f.size);

  // The __fentry__ call: ftrace turns it into a NOP at boot and into a call
  // of its trampoline while the function is patched.
  f.masked.push_back({0, 5, "ftrace"});

  // Decode the function once: instruction boundaries for the one-instruction
  // sites, and the 4-byte fields KASLR relocates (absolute addresses inside
  // the image, which -mcmodel=kernel encodes as sign-extended 32-bit values,
  // and %rip-relative displacements to per-CPU variables).
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  std::map<uint64_t, uint32_t> instruction_length;  // offset -> length
  for (uint64_t off = 0; off < f.size;) {
    ZydisDecodedInstruction ins;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, f.bytes.data() + off, f.size - off, &ins, ops))) {
      ++off;  // padding or data between functions
      continue;
    }
    instruction_length[off] = ins.length;
    auto absolute = [&](uint64_t value_offset, uint8_t bits, int64_t value) {
      if (bits != 32) return;
      uint64_t v = uint64_t(value);
      if (v >= image_start_ && v < image_end_) f.absolute32.push_back(uint32_t(off + value_offset));
    };
    bool rip_relative = false;
    for (int i = 0; i < ins.operand_count; ++i)
      if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.base == ZYDIS_REGISTER_RIP) rip_relative = true;
    if (ins.raw.disp.size == 32 && !rip_relative)
      absolute(ins.raw.disp.offset, 32, ins.raw.disp.value);
    if (ins.raw.disp.size == 32 && rip_relative) {
      uint64_t target = sym.address + off + ins.length + uint64_t(ins.raw.disp.value);
      if (target >= percpu_start_ && target < percpu_end_)
        f.percpu_pcrel32.push_back(uint32_t(off + ins.raw.disp.offset));
    }
    for (int i = 0; i < 2; ++i)
      if (ins.raw.imm[i].size == 32 && !ins.raw.imm[i].is_relative && ins.raw.imm[i].is_signed)
        absolute(ins.raw.imm[i].offset, 32, ins.raw.imm[i].value.s);
    off += ins.length;
  }
  auto lo = std::lower_bound(boot_patch_sites_.begin(), boot_patch_sites_.end(),
                             std::make_tuple(sym.address, uint32_t(0), std::string()));
  for (auto it = lo; it != boot_patch_sites_.end() && std::get<0>(*it) < sym.address + f.size; ++it) {
    uint64_t off = std::get<0>(*it) - sym.address;
    uint32_t len = std::get<1>(*it);
    if (len == 0) {
      auto ins = instruction_length.find(off);
      // A site that is not an instruction boundary of this decoding: mask
      // up to the longest form a site takes (a 6-byte conditional jump).
      len = ins == instruction_length.end() ? 6 : ins->second;
    }
    len = uint32_t(std::min<uint64_t>(len, f.size - off));
    f.masked.push_back({uint32_t(off), len, std::get<2>(*it)});
  }
  return f;
}

}  // namespace graft::kernel
