#include "loader/unwind_registration.h"

#include <elf.h>

#include <algorithm>
#include <filesystem>

#include "arch/x86_64/stub_unwind_info.h"
#include "common/address_range.h"
#include "common/error.h"
#include "elf/eh_frame_table.h"
#include "elf/elf_file.h"
#include "loader/callbacks.h"

namespace graft {

namespace {

// Where libgcc's _Unwind_Find_FDE writes its `struct dwarf_eh_bases' (three
// words) when graft asks it: past the `struct object' in the same bss.
constexpr uint64_t kBasesOffset = kUnwindObjectSize - 32;

// Read at most this much of a region's .eh_frame to find an FDE.
constexpr uint64_t kMaxEhFrame = 1 << 20;

uint64_t lookup_or_zero(SymbolResolver& resolver, const char* name) {
  try {
    return resolver.resolve(name);
  } catch (const Error&) {
    return 0;
  }
}

// libgcc's function must be code of a mapped file, not of a graft region:
// the record it comes from is the target's memory.
void check_function(const std::vector<Mapping>& maps, const PatchRecord& record, uint64_t fn, const char* what) {
  for (const auto& m : maps)
    if (m.contains(fn) && m.exec && !m.path.empty() && m.path[0] == '/' &&
        !AddressRange{record.region_start, record.region_size}.contains(fn))
      return;
  fail("patch {}: its record names {} at {:#x}, which is not the code of a loaded object", record.label(), what, fn);
}

// All three or nothing: a process without libgcc's unwinder throws no
// exception through graft's code.
UnwindRecord libgcc_registration(SymbolResolver& resolver, uint64_t eh_frame, uint64_t object) {
  UnwindRecord u{eh_frame, object, lookup_or_zero(resolver, "__register_frame_info"),
                 lookup_or_zero(resolver, "__deregister_frame_info"), lookup_or_zero(resolver, "_Unwind_Find_FDE")};
  if (u.register_fn && u.deregister_fn && u.find_fde_fn) return u;
  return {};
}

// A static executable has no dynamic symbols to resolve libgcc_eh's
// functions with: its .symtab names them. None if the process maps any
// shared object (its unwinder is then a library's, found above).
UnwindRecord static_libgcc_registration(const std::vector<LoadedObject>& objects, pid_t pid, uint64_t eh_frame,
                                        uint64_t object) {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", pid), ec);
  if (ec) return {};
  const LoadedObject* self = nullptr;
  for (const auto& o : objects) {
    if (o.path == exe.string())
      self = &o;
    else if (!o.path.empty() && o.path[0] == '/')
      return {};  // a shared object
  }
  if (!self) return {};
  UnwindRecord u{eh_frame, object, 0, 0, 0};
  try {
    ElfFile elf(self->file.empty() ? self->path : self->file, self->path);
    for (const auto& sym : elf.symbols()) {
      if (!sym.defined() || sym.type != STT_FUNC) continue;
      if (sym.name == "__register_frame_info") u.register_fn = self->bias + sym.value;
      if (sym.name == "__deregister_frame_info") u.deregister_fn = self->bias + sym.value;
      if (sym.name == "_Unwind_Find_FDE") u.find_fde_fn = self->bias + sym.value;
    }
  } catch (const Error&) {
    return {};
  }
  if (u.register_fn && u.deregister_fn && u.find_fde_fn) return u;
  return {};
}

RemoteCallResult call(TargetSession& session, const PatchRecord& record, uint64_t fn, uint64_t a0, uint64_t a1,
                      double timeout_s) {
  const uint64_t args[6] = {a0, a1};
  return call_for_patch(session, record, {fn}, args, timeout_s);
}

}  // namespace

void plan_unwind_registration(PatchRecord& record, SymbolResolver& resolver, TargetSession& session,
                              uint64_t eh_frame, uint64_t object) {
  record.unwind = libgcc_registration(resolver, eh_frame, object);
  if (!record.unwind.eh_frame)
    record.unwind = static_libgcc_registration(session.objects(), session.pid(), eh_frame, object);
}

void plan_stub_unwind_registration(PatchRecord& record, SymbolResolver& resolver, TargetSession& session,
                                   uint64_t eh_frame, uint64_t object) {
  record.stub_unwind = libgcc_registration(resolver, eh_frame, object);
  if (!record.stub_unwind.eh_frame)
    record.stub_unwind = static_libgcc_registration(session.objects(), session.pid(), eh_frame, object);
}

std::string register_stub_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s) {
  const ProcessMemory& memory = session.memory();
  const UnwindRecord& u = record.stub_unwind;
  if (!u.eh_frame) return "the process has no libgcc unwinder (__register_frame_info) to register them with";
  RemoteCallResult r = call(session, record, u.register_fn, u.eh_frame, u.object, timeout_s);
  if (r.status != RemoteCallResult::Status::Returned)
    return fmt::format("registering their unwind information with libgcc failed: __register_frame_info {}",
                       r.describe());
  if (!stub_unwind_registered(memory, record))
    return "libgcc did not take their unwind information (__register_frame_info left its object blank)";
  return "";
}

bool stub_unwind_registered(const ProcessMemory& memory, const PatchRecord& record) {
  uint64_t first = 0;
  return record.stub_unwind.eh_frame && memory.try_read({record.stub_unwind.object}, &first, sizeof first) &&
         first != 0;
}

void register_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s) {
  if (!record.unwind.eh_frame) return;
  RemoteCallResult r = call(session, record, record.unwind.register_fn, record.unwind.eh_frame,
                            record.unwind.object, timeout_s);
  if (r.status != RemoteCallResult::Status::Returned)
    fail("process {}: registering the unwind information of patch {} with libgcc (so that C++ exceptions "
         "pass through its functions) failed: __register_frame_info {}",
         session.pid(), record.label(), r.describe());
}

namespace {

// Deregisters `u` (the unwind information of `what`, which ends by `end`)
// if libgcc holds it.
void deregister(TargetSession& session, const PatchRecord& record, const UnwindRecord& u, uint64_t end,
                const std::string& what, double timeout_s) {
  const ProcessMemory& memory = session.memory();
  const std::vector<Mapping>& maps = session.maps();
  // libgcc has never seen it if its `struct object' is still all zero.
  uint64_t first = 0;
  if (!memory.try_read({u.object}, &first, sizeof first))
    fail("process {}: cannot read libgcc's registration of {}", memory.pid(), what);
  if (first == 0) return;
  check_function(maps, record, u.find_fde_fn, "_Unwind_Find_FDE");
  check_function(maps, record, u.deregister_fn, "__deregister_frame_info");
  // Ask about a pc the .eh_frame covers: libgcc searches every object it
  // holds, so an FDE it does not find is of an object it does not hold (a
  // graft killed between deregistering and zeroing).
  const AddressRange region{record.region_start, record.region_size};
  const uint64_t region_end = record.region_start + record.region_size;
  end = std::min(end, region_end);
  if (u.eh_frame >= end) fail("process {}: the unwind information of {} lies outside its region", memory.pid(), what);
  Bytes frames(std::min<uint64_t>(end - u.eh_frame, kMaxEhFrame));
  if (!memory.try_read({u.eh_frame}, frames.data(), frames.size()))
    fail("process {}: cannot read the unwind information of {}", memory.pid(), what);
  std::optional<uint64_t> pc;
  for (const FdeEntry& e : eh_frame_table(frames, u.eh_frame))
    if (region.contains(e.pc)) {
      pc = e.pc;
      break;
    }
  if (!pc)
    fail("process {}: libgcc may hold the unwind information of {}, which covers none of its code: "
         "it cannot be asked whether it does",
         memory.pid(), what);
  RemoteCallResult found = call(session, record, u.find_fde_fn, *pc, u.object + kBasesOffset, timeout_s);
  if (found.status != RemoteCallResult::Status::Returned)
    fail("process {}: asking libgcc whether it holds the unwind information of {} failed: "
         "_Unwind_Find_FDE {}",
         memory.pid(), what, found.describe());
  bool held = found.value != 0;
  if (held && (found.value < u.eh_frame || found.value >= region_end))
    fail("process {}: libgcc finds the code of {} in unwind information outside it", memory.pid(), what);
  if (held) {
    RemoteCallResult r = call(session, record, u.deregister_fn, u.eh_frame, 0, timeout_s);
    if (r.status != RemoteCallResult::Status::Returned || r.value != u.object)
      fail("process {}: deregistering the unwind information of {} from libgcc failed: "
           "__deregister_frame_info {}",
           memory.pid(), what, r.describe());
  }
  // Never deregistered twice: __deregister_frame_info aborts the process
  // for an object libgcc does not hold.
  Bytes zero(kUnwindObjectSize);
  memory.write({u.object}, zero);
}

}  // namespace

void deregister_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s) {
  if (const UnwindRecord& u = record.stub_unwind; u.eh_frame) {
    uint64_t size = arch::return_stubs_eh_frame_size(
        static_cast<uint32_t>(std::min<uint64_t>(record.transition.return_stub_count, 65536)), !record.per_thread());
    deregister(session, record, u, u.eh_frame + size, "the return stubs of patch " + record.label(),
               timeout_s);
  }
  if (record.unwind.eh_frame && !record.functions.empty())
    deregister(session, record, record.unwind, record.region_start + record.region_size,
               "patch " + record.label(), timeout_s);
}

}  // namespace graft
