#include "kernel/run_pre_check.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/file.h"
#include "kernel/kernel_symbols.h"
#include "kernel/shipped_module.h"

namespace graft::kernel {

RunningKernel RunningKernel::current() {
  utsname u;
  if (uname(&u) != 0) fail("uname: {}", errno_text(errno));
  RunningKernel k;
  k.release = u.release;
  k.modules = "/lib/modules/" + k.release;
  return k;
}

namespace {

// Kernel memory through /proc/kcore, an ELF core file whose PT_LOAD
// segments map kernel virtual addresses.
class KernelMemory {
 public:
  explicit KernelMemory(const std::string& path) : path_(path) {
    elf_version(EV_CURRENT);
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("cannot open {}: {} (the run-pre check reads kernel code; run as root)", path, errno_text(errno));
    Elf* elf = elf_begin(fd_, ELF_C_READ, nullptr);
    if (!elf || elf_kind(elf) != ELF_K_ELF) fail("{}: not an ELF core file: {}", path, elf_errmsg(-1));
    size_t n = 0;
    if (elf_getphdrnum(elf, &n) != 0) fail("{}: no program headers", path);
    for (size_t i = 0; i < n; ++i) {
      GElf_Phdr ph;
      if (gelf_getphdr(elf, int(i), &ph) && ph.p_type == PT_LOAD) segments_.push_back(ph);
    }
    elf_end(elf);
    if (segments_.empty()) fail("{}: no memory segments", path);
  }
  ~KernelMemory() {
    if (fd_ >= 0) close(fd_);
  }
  Bytes read(uint64_t address, size_t size) const {
    for (const auto& s : segments_) {
      if (address < s.p_vaddr || address + size > s.p_vaddr + s.p_filesz) continue;
      Bytes out(size);
      ssize_t got = pread(fd_, out.data(), size, off_t(s.p_offset + (address - s.p_vaddr)));
      if (got != ssize_t(size))
        fail("{}: cannot read {} bytes at {:#x}: {}", path_, size, address, got < 0 ? errno_text(errno) : "short read");
      return out;
    }
    fail("{}: address {:#x} (+{}) is not in kernel memory", path_, address, size);
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<GElf_Phdr> segments_;
};

uint32_t u32_at(const Bytes& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}

std::string label(const FunctionFingerprint& f) {
  return f.object.empty() ? f.name : fmt::format("{} (module {})", f.name, f.object);
}

// Compares a function's bytes in the running kernel with those recorded:
// masked ranges skipped, KASLR's offset applied to the recorded address
// fields. Returns (bytes masked, fields relocated); throws at the first
// difference, naming the function and the offset.
std::pair<size_t, size_t> compare_code(const KernelPatchManifest& m, const FunctionFingerprint& f, const Bytes& live,
                                       int64_t kaslr_offset) {
  std::vector<uint8_t> skip(f.size, 0);  // 1: masked, 2: relocated field
  size_t masked = 0;
  for (const auto& r : f.masked)
    for (uint32_t i = r.offset; i < r.offset + r.length; ++i)
      if (!skip[i]) skip[i] = 1, ++masked;
  // KASLR moves the code: absolute addresses of the image grow by its
  // offset, displacements from the code to per-CPU variables (which do
  // not move) shrink by it.
  size_t relocated = 0;
  auto relocated_field = [&](uint32_t off, int64_t delta, const char* what) {
    for (uint32_t i = off; i < off + 4; ++i)
      if (skip[i]) return;
    uint32_t want = u32_at(f.bytes, off) + uint32_t(delta);
    if (u32_at(live, off) != want)
      fail("patch {}: run-pre check: {}+{:#x}: {} {:#x} in the running kernel, expected {:#x}", m.name, f.name,
           off, what, u32_at(live, off), want);
    for (uint32_t i = off; i < off + 4; ++i) skip[i] = 2;
    ++relocated;
  };
  for (uint32_t off : f.absolute32) relocated_field(off, kaslr_offset, "absolute address");
  for (uint32_t off : f.percpu_pcrel32) relocated_field(off, -kaslr_offset, "per-CPU displacement");
  for (size_t i = 0; i < f.size; ++i) {
    if (skip[i] || live[i] == f.bytes[i]) continue;
    const char* why = "";
    for (const auto& r : f.masked)
      if (i >= r.offset && i < r.offset + r.length) why = r.reason.c_str();
    fail("patch {}: run-pre check: {} differs from the code the patch was built for at +{:#x} "
         "(running {:02x}, expected {:02x}){}",
         m.name, label(f), i, live[i], f.bytes[i], why);
  }
  return {masked, relocated};
}

// A module's function: see run_pre_check.h.
RunPreReport::Function check_module_function(const KernelPatchManifest& m, const FunctionFingerprint& f,
                                             const SymbolTable& running, const KernelMemory& memory,
                                             const RunningKernel& k) {
  RunPreReport::Function r{f.object, f.name, "running", 0, f.size, 0, 0, 0};
  if (!running.module_loaded(f.object)) {
    std::string file = k.modules + "/" + m.module_files.at(f.object);
    if (k.modules.empty() || !std::filesystem::is_regular_file(file)) {
      r.checked = "not loaded";
      return r;
    }
    Bytes on_disk;
    try {
      on_disk = ShippedModule(file, f.object).file_bytes(f.name, f.sympos);
    } catch (const Error& e) {
      fail("patch {}: run-pre check: {}: {}", m.name, label(f), e.what());
    }
    if (on_disk.size() != f.bytes.size())
      fail("patch {}: run-pre check: {} in {} is {} bytes, the patch was built for {}", m.name, label(f), file,
           on_disk.size(), f.size);
    auto diff = std::mismatch(on_disk.begin(), on_disk.end(), f.bytes.begin());
    if (diff.first != on_disk.end())
      fail("patch {}: run-pre check: {} in {} is not the code the patch was built for: at +{:#x} the file has "
           "{:02x}, expected {:02x}",
           m.name, label(f), file, diff.first - on_disk.begin(), *diff.first, *diff.second);
    r.checked = "module file";
    r.bytes_compared = f.size;
    return r;
  }
  auto all = running.module_named(f.object, f.name);
  if (all.empty() || (f.sympos == 0 && all.size() > 1) || f.sympos > all.size())
    fail("patch {}: run-pre check: module {} is loaded and has {} function(s) {} (position {} wanted)", m.name,
         f.object, all.size(), f.name, f.sympos);
  const KernelSymbol* sym = all[f.sympos ? f.sympos - 1 : 0];
  if (!sym->text()) fail("patch {}: run-pre check: {} is not code in the running kernel", m.name, label(f));
  const KernelSymbol* next = running.module_next_after(f.object, sym->address);
  if (next && next->address < sym->address + f.size)
    fail("patch {}: run-pre check: {} should span {} bytes, the running module has {} at +{}", m.name, label(f),
         f.size, next->name, next->address - sym->address);
  Bytes live = memory.read(sym->address, f.size);
  auto [masked, relocated] = compare_code(m, f, live, 0);
  r.address = sym->address;
  r.bytes_masked = masked;
  r.bytes_compared = f.size - masked;
  r.relocated_fields = relocated;
  return r;
}

}  // namespace

RunPreReport run_pre_check(const KernelPatchManifest& m, const RunningKernel& k) {
  if (k.release != m.release)
    fail("patch {} was built for kernel {}, this kernel is {}", m.name, m.release, k.release);
  SymbolTable running = SymbolTable::parse(read_text_file(k.kallsyms, size_t(256) << 20), k.kallsyms);
  const KernelSymbol* anchor = running.first(m.anchor_symbol);
  if (!anchor || anchor->address == 0)
    fail("{} hides addresses (kptr_restrict): the run-pre check needs them; run as root", k.kallsyms);
  RunPreReport report;
  report.kaslr_offset = int64_t(anchor->address - m.anchor_address);
  KernelMemory memory(k.kcore);
  for (const auto& f : m.functions) {
    if (!f.object.empty()) {
      report.functions.push_back(check_module_function(m, f, running, memory, k));
      continue;
    }
    uint64_t expected = f.address + uint64_t(report.kaslr_offset);
    const KernelSymbol* sym;
    try {
      sym = &running.resolve(f.name, f.sympos);
    } catch (const Error& e) {
      fail("patch {}: run-pre check: {}", m.name, e.what());
    }
    if (sym->address != expected)
      fail("patch {}: run-pre check: {} is at {:#x} in the running kernel, the patch expects {:#x} "
           "(image {:#x} + KASLR offset {:#x}): not the kernel it was built for",
           m.name, f.name, sym->address, expected, f.address, report.kaslr_offset);
    // Compare the extent, not the next symbol's name: System.map and
    // /proc/kallsyms order same-address aliases differently.
    const KernelSymbol* next = running.next_after(sym->address);
    if (!next || next->address != expected + f.size)
      fail("patch {}: run-pre check: {} should span {} bytes up to {}, the running kernel has {} at +{}",
           m.name, f.name, f.size, f.next_symbol, next ? next->name : "nothing",
           next ? next->address - sym->address : 0);
    Bytes live = memory.read(sym->address, f.size);
    auto [masked, relocated] = compare_code(m, f, live, report.kaslr_offset);
    report.functions.push_back({"", f.name, "running", sym->address, f.size, f.size - masked, masked, relocated});
  }
  return report;
}

}  // namespace graft::kernel
