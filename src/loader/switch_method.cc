#include "loader/switch_method.h"

#include "arch/x86_64/displaced.h"
#include "loader/switch_methods.h"

namespace graft {

const char* switch_kind_name(SwitchKind kind) {
  switch (kind) {
    case SwitchKind::direct_stop: return "direct stop";
    case SwitchKind::gated_stop: return "gated stop";
    case SwitchKind::per_thread: return "per thread";
  }
  return "?";
}

SwitchKind apply_switch_kind(Model model, bool cumulative, size_t functions) {
  if (per_thread(model)) return SwitchKind::per_thread;
  // A cumulative patch also puts back other patches' entries, which the
  // flag cannot cover.
  return !cumulative && functions >= 2 ? SwitchKind::gated_stop : SwitchKind::direct_stop;
}

SwitchKind revert_switch_kind(Model model, const PatchRecord& record) {
  if (per_thread(model)) return SwitchKind::per_thread;
  return record.switch_gates() ? SwitchKind::gated_stop : SwitchKind::direct_stop;
}

std::unique_ptr<SwitchMethod> make_switch_method(SwitchKind kind) {
  switch (kind) {
    case SwitchKind::direct_stop: return std::make_unique<DirectStopSwitch>();
    case SwitchKind::gated_stop: return std::make_unique<GatedStopSwitch>();
    case SwitchKind::per_thread: return std::make_unique<PerThreadSwitch>();
  }
  return nullptr;
}

uint64_t stubs_unwind_size(uint32_t exit_stubs, bool stop_stub) {
  return page_round_up(kUnwindObjectSize + arch::return_stubs_eh_frame_size(exit_stubs, stop_stub));
}

FunctionRecord restored_record(const FunctionRecord& f, const Bytes& original) {
  FunctionRecord fr;
  fr.symbol = f.symbol;
  fr.demangled = f.demangled;
  fr.file = f.file;
  fr.address = f.address;
  fr.size = f.size;
  fr.site = f.site;
  fr.original = original;
  fr.redirect = original;
  fr.cold_parts = f.cold_parts;
  fr.restores = true;
  return fr;
}

void check_displaceable(const Bytes& code, const Bytes& whole, uint64_t address, uint64_t site,
                        const std::vector<AddressRange>& cold, const std::string& name,
                        const MemoryReader& memory) {
  size_t n = arch::relocate_displaced(code, site, site, name).length;
  arch::check_no_branch_into(whole, address, site, n, name);
  for (const auto& c : cold) arch::check_no_branch_into(memory.read({c.start}, c.size), c.start, site, n, name);
}

}  // namespace graft
