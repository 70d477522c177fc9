#include "arch/x86_64/stub_unwind_info.h"

#include "arch/x86_64/call_frame_info.h"
#include "arch/x86_64/return_stub.h"
#include "arch/x86_64/stop_stub.h"

namespace graft::arch {

namespace {

// The stub's CFA lies kCfaBias above where the caller's stack pointer will
// be (see stub_unwind_info.h), which the CIE gives as a value.
constexpr uint8_t kCfaBias = 1;

// CFA = rsp + kCfaBias; the caller's rsp = CFA - kCfaBias.
Bytes initial_rules() {
  Bytes b = {cfi::kDefCfa, cfi::kRsp, kCfaBias};
  cfi::value_below_cfa(b, cfi::kRsp, kCfaBias);
  return b;
}

void exit_stub_fde(Bytes& out, uint64_t at, size_t cie, uint64_t stub) {
  const size_t fde = cfi::append_fde_at(out, at, cie, stub - 1, kReturnStubSize);
  cfi::saved_at_address(out, cfi::kReturnAddress, stub + kReturnStubOriginal);
  cfi::finish_entry(out, fde);
}

void stop_stub_fde(Bytes& out, uint64_t at, size_t cie, uint64_t stub) {
  // The code ends at kStopStubOriginal; pc_begin is stub-1, so a row for
  // stub offset k starts k+1 bytes in (stop_stub.h lists the offsets).
  const size_t fde = cfi::append_fde_at(out, at, cie, stub - 1, kStopStubOriginal + 1);
  cfi::saved_at_address(out, cfi::kReturnAddress, stub + kStopStubOriginal);
  cfi::advance(out, 5 + 1);  // +5: below the red zone
  cfi::def_cfa_offset(out, kCfaBias + 128);
  cfi::advance(out, 1);  // +6: rax pushed
  cfi::def_cfa_offset(out, kCfaBias + 136);
  cfi::saved_below_cfa(out, cfi::kRax, kCfaBias + 136);
  cfi::advance(out, 1);  // +7: rcx pushed
  cfi::def_cfa_offset(out, kCfaBias + 144);
  cfi::saved_below_cfa(out, cfi::kRcx, kCfaBias + 144);
  cfi::advance(out, 2);  // +9: r11 pushed
  cfi::def_cfa_offset(out, kCfaBias + 152);
  cfi::saved_below_cfa(out, cfi::kR11, kCfaBias + 152);
  cfi::advance(out, 9);  // +18: r11 popped
  cfi::def_cfa_offset(out, kCfaBias + 144);
  cfi::append(out, {cfi::kRestore | cfi::kR11});
  cfi::advance(out, 1);  // +19: rcx popped
  cfi::def_cfa_offset(out, kCfaBias + 136);
  cfi::append(out, {cfi::kRestore | cfi::kRcx});
  cfi::advance(out, 1);  // +20: rax popped
  cfi::def_cfa_offset(out, kCfaBias + 128);
  cfi::append(out, {cfi::kRestore | cfi::kRax});
  cfi::advance(out, 8);  // +28: back above the red zone
  cfi::def_cfa_offset(out, kCfaBias);
  cfi::finish_entry(out, fde);
}

}  // namespace

Bytes return_stubs_eh_frame(uint64_t at, const ReturnStubs& stubs) {
  Bytes out;
  const size_t cie = cfi::append_cie(out, initial_rules());
  for (uint32_t i = 0; i < stubs.exit_count; ++i)
    exit_stub_fde(out, at, cie, stubs.exit_stubs + uint64_t(i) * kReturnStubSize);
  if (stubs.stop_stub) stop_stub_fde(out, at, cie, stubs.stop_stub);
  out.insert(out.end(), 4, 0);  // the end of the list
  return out;
}

uint64_t return_stubs_eh_frame_size(uint32_t exit_count, bool stop_stub) {
  const uint64_t near = uint64_t(1) << 20;
  return return_stubs_eh_frame(near, {near, exit_count, stop_stub ? near : 0}).size();
}

}  // namespace graft::arch
