#include "arch/x86_64/call_frame_info.h"

#include <cstring>

#include "common/error.h"

namespace graft::arch::cfi {

namespace {

void put32(Bytes& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

}  // namespace

void append(Bytes& out, std::initializer_list<uint8_t> bytes) { out.insert(out.end(), bytes); }

size_t append_cie(Bytes& out, const Bytes& initial) {
  const size_t start = out.size();
  out.resize(start + 4, 0);
  // CIE id 0, version 1, "zR", code alignment 1, data alignment -8 (sleb
  // 0x78), return address column, augmentation data: 1 byte, pcrel|sdata4.
  append(out, {0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, kReturnAddress, 1, 0x1b});
  out.insert(out.end(), initial.begin(), initial.end());
  finish_entry(out, start);
  return start;
}

size_t append_fde(Bytes& out, size_t cie, int32_t pc_begin, uint32_t range) {
  const size_t start = out.size();
  out.resize(start + 16, 0);
  put32(out, start + 4, static_cast<uint32_t>(start + 4 - cie));  // back to the CIE
  put32(out, start + 8, static_cast<uint32_t>(pc_begin));
  put32(out, start + 12, range);
  out.push_back(0);  // no augmentation data
  return start;
}

size_t append_fde_at(Bytes& out, uint64_t eh_frame, size_t cie, uint64_t pc, uint32_t range) {
  const uint64_t field = eh_frame + out.size() + 8;
  const int64_t rel = static_cast<int64_t>(pc - field);
  if (rel < INT32_MIN || rel > INT32_MAX)
    fail("unwind information at {:#x}: code at {:#x} is out of its reach", eh_frame, pc);
  return append_fde(out, cie, static_cast<int32_t>(rel), range);
}

void finish_entry(Bytes& out, size_t start) {
  while ((out.size() - start) % 8) out.push_back(kNop);
  put32(out, start, static_cast<uint32_t>(out.size() - start - 4));
}

void advance(Bytes& out, uint64_t delta) {
  if (delta < 64) {
    out.push_back(static_cast<uint8_t>(kAdvanceLoc | delta));
  } else if (delta < 256) {
    out.push_back(kAdvanceLoc1);
    out.push_back(static_cast<uint8_t>(delta));
  } else {
    out.push_back(kAdvanceLoc2);
    out.push_back(static_cast<uint8_t>(delta));
    out.push_back(static_cast<uint8_t>(delta >> 8));
  }
}

void def_cfa_offset(Bytes& out, uint64_t offset) {
  out.push_back(kDefCfaOffset);
  do {  // ULEB128
    uint8_t b = offset & 0x7f;
    offset >>= 7;
    out.push_back(static_cast<uint8_t>(b | (offset ? 0x80 : 0)));
  } while (offset);
}

void saved_at_address(Bytes& out, uint8_t reg, uint64_t at) {
  append(out, {kExpression, reg, 9, kOpAddr});
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(at >> (8 * i)));
}

void saved_below_cfa(Bytes& out, uint8_t reg, uint8_t below) {
  append(out, {kExpression, reg, 3, kOpConst1u, below, kOpMinus});  // the CFA is pushed first
}

void value_below_cfa(Bytes& out, uint8_t reg, uint8_t below) {
  append(out, {kValExpression, reg, 3, kOpConst1u, below, kOpMinus});
}

}  // namespace graft::arch::cfi
