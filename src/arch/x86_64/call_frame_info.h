// DWARF call frame information (.eh_frame layout) for code graft writes
// itself: the entry thunks and the return stubs. Every entry is one CIE
// ("zR": code alignment 1, data alignment -8, the return address in column
// 16, FDE addresses pc-relative sdata4) or an FDE, 8-byte aligned, its
// length word first (DWARF 5, 6.4.1; LSB Core, "The .eh_frame section").
#pragma once
#include <cstdint>
#include <initializer_list>

#include "common/hash.h"

namespace graft::arch::cfi {

// Call frame instructions (DWARF 5, 6.4.2) and the one expression operator
// used.
enum : uint8_t {
  kNop = 0x00, kAdvanceLoc1 = 0x02, kAdvanceLoc2 = 0x03, kDefCfa = 0x0c, kDefCfaRegister = 0x0d,
  kDefCfaOffset = 0x0e, kExpression = 0x10, kValExpression = 0x16, kAdvanceLoc = 0x40, kOffset = 0x80,
  kRestore = 0xc0,
};
// DWARF expression operators (DWARF 5, 2.5.1).
enum : uint8_t { kOpAddr = 0x03, kOpConst1u = 0x08, kOpMinus = 0x1c };

// DWARF register numbers of x86-64 (psABI, figure 3.36).
constexpr uint8_t kRax = 0, kRcx = 2, kRbp = 6, kRsp = 7, kR11 = 11, kReturnAddress = 16;

// Appends a CIE whose initial instructions are `initial`; returns its
// offset in `out`.
size_t append_cie(Bytes& out, const Bytes& initial);

// Appends the head of an FDE of the CIE at offset `cie` covering `range`
// bytes; its pc_begin field (at the returned offset + 8) holds `pc_begin`,
// relative to the field itself. Instructions follow, then finish_entry().
size_t append_fde(Bytes& out, size_t cie, int32_t pc_begin, uint32_t range);

// The FDE of a code block at the known address `pc`, in an .eh_frame that
// starts at `eh_frame`; throws graft::Error if `pc` is out of sdata4 reach.
size_t append_fde_at(Bytes& out, uint64_t eh_frame, size_t cie, uint64_t pc, uint32_t range);

// Pads the entry that starts at `start` with DW_CFA_nop to a multiple of 8
// and writes its length.
void finish_entry(Bytes& out, size_t start);

// DW_CFA_advance_loc* by `delta` bytes of code.
void advance(Bytes& out, uint64_t delta);

// DW_CFA_def_cfa_offset `offset`.
void def_cfa_offset(Bytes& out, uint64_t offset);

// DW_CFA_expression: `reg` was saved at the constant address `at`.
void saved_at_address(Bytes& out, uint8_t reg, uint64_t at);

// DW_CFA_expression: `reg` was saved at CFA - `below` (any byte offset,
// where DW_CFA_offset takes multiples of the data alignment).
void saved_below_cfa(Bytes& out, uint8_t reg, uint8_t below);

// DW_CFA_val_expression: the value of `reg` is CFA - `below`.
void value_below_cfa(Bytes& out, uint8_t reg, uint8_t below);

void append(Bytes& out, std::initializer_list<uint8_t> bytes);

}  // namespace graft::arch::cfi
