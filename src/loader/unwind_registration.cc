#include "loader/unwind_registration.h"

#include <algorithm>

#include "common/address_range.h"
#include "common/error.h"
#include "elf/eh_frame_table.h"
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

RemoteCallResult call(TargetSession& session, const PatchRecord& record, uint64_t fn, uint64_t a0, uint64_t a1,
                      double timeout_s) {
  const uint64_t args[6] = {a0, a1};
  return call_for_patch(session, record, {fn}, args, timeout_s);
}

}  // namespace

void plan_unwind_registration(PatchRecord& record, SymbolResolver& resolver, uint64_t eh_frame, uint64_t object) {
  UnwindRecord u{eh_frame, object, lookup_or_zero(resolver, "__register_frame_info"),
                 lookup_or_zero(resolver, "__deregister_frame_info"), lookup_or_zero(resolver, "_Unwind_Find_FDE")};
  // All three or nothing: a process without libgcc's unwinder throws no
  // exception through the patch.
  if (u.register_fn && u.deregister_fn && u.find_fde_fn) record.unwind = u;
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

void deregister_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s) {
  const ProcessMemory& memory = session.memory();
  const std::vector<Mapping>& maps = session.maps();
  const UnwindRecord& u = record.unwind;
  if (!u.eh_frame || record.functions.empty()) return;
  // libgcc has never seen it if its `struct object' is still all zero.
  uint64_t first = 0;
  if (!memory.try_read({u.object}, &first, sizeof first))
    fail("process {}: cannot read libgcc's registration of patch {}", memory.pid(), record.label());
  if (first == 0) return;
  check_function(maps, record, u.find_fde_fn, "_Unwind_Find_FDE");
  check_function(maps, record, u.deregister_fn, "__deregister_frame_info");
  // Ask about a pc the patch's .eh_frame covers: libgcc searches every
  // object it holds, so an FDE it does not find is of an object it does
  // not hold (a graft killed between deregistering and zeroing).
  const uint64_t region_end = record.region_start + record.region_size;
  Bytes frames(std::min<uint64_t>(region_end - u.eh_frame, kMaxEhFrame));
  if (!memory.try_read({u.eh_frame}, frames.data(), frames.size()))
    fail("process {}: cannot read the unwind information of patch {}", memory.pid(), record.label());
  std::optional<uint64_t> pc;
  for (const FdeEntry& e : eh_frame_table(frames, u.eh_frame))
    if (AddressRange{record.region_start, record.region_size}.contains(e.pc)) {
      pc = e.pc;
      break;
    }
  if (!pc)
    fail("process {}: libgcc may hold the unwind information of patch {}, which covers none of its code: "
         "it cannot be asked whether it does",
         memory.pid(), record.label());
  RemoteCallResult found = call(session, record, u.find_fde_fn, *pc, u.object + kBasesOffset, timeout_s);
  if (found.status != RemoteCallResult::Status::Returned)
    fail("process {}: asking libgcc whether it holds the unwind information of patch {} failed: "
         "_Unwind_Find_FDE {}",
         memory.pid(), record.label(), found.describe());
  bool held = found.value != 0;
  if (held && (found.value < u.eh_frame || found.value >= region_end))
    fail("process {}: libgcc finds the code of patch {} in unwind information outside it", memory.pid(),
         record.label());
  if (held) {
    RemoteCallResult r = call(session, record, u.deregister_fn, u.eh_frame, 0, timeout_s);
    if (r.status != RemoteCallResult::Status::Returned || r.value != u.object)
      fail("process {}: deregistering the unwind information of patch {} from libgcc failed: "
           "__deregister_frame_info {}",
           memory.pid(), record.label(), r.describe());
  }
  // Never deregistered twice: __deregister_frame_info aborts the process
  // for an object libgcc does not hold.
  Bytes zero(kUnwindObjectSize);
  memory.write({u.object}, zero);
}

}  // namespace graft
