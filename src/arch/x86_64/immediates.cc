#include "arch/x86_64/immediates.h"

#include <Zydis/Zydis.h>

#include <cstring>

namespace graft::arch {

namespace {

const ZydisDecoder& decoder() {
  static const ZydisDecoder d = [] {
    ZydisDecoder x;
    ZydisDecoderInit(&x, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    return x;
  }();
  return d;
}

}  // namespace

std::optional<std::vector<ImmediateChange>> immediate_changes(std::span<const uint8_t> before,
                                                              std::span<const uint8_t> after) {
  if (before.size() != after.size()) return std::nullopt;
  std::vector<ImmediateChange> out;
  size_t at = 0;
  while (at < before.size()) {
    ZydisDecodedInstruction a, b;
    if (ZYAN_FAILED(ZydisDecoderDecodeInstruction(&decoder(), nullptr, before.data() + at,
                                                  before.size() - at, &a)) ||
        ZYAN_FAILED(ZydisDecoderDecodeInstruction(&decoder(), nullptr, after.data() + at,
                                                  after.size() - at, &b)))
      return std::nullopt;
    if (a.length != b.length || a.mnemonic != b.mnemonic) return std::nullopt;
    if (std::memcmp(before.data() + at, after.data() + at, a.length) != 0) {
      // Every differing byte must lie in an immediate field at the same place.
      bool mask[ZYDIS_MAX_INSTRUCTION_LENGTH] = {};
      for (int i = 0; i < 2; ++i) {
        const auto& ia = a.raw.imm[i];
        const auto& ib = b.raw.imm[i];
        if (ia.size != ib.size || ia.offset != ib.offset) return std::nullopt;
        if (ia.size == 0) continue;
        // A relative immediate is a branch: a different target is a
        // different layout, not a different constant.
        if (ia.is_relative && ia.value.u != ib.value.u) return std::nullopt;
        for (unsigned k = 0; k < ia.size / 8u; ++k) mask[ia.offset + k] = true;
        if (ia.value.u != ib.value.u)
          out.push_back({at, ia.is_signed ? ia.value.s : static_cast<int64_t>(ia.value.u),
                         ib.is_signed ? ib.value.s : static_cast<int64_t>(ib.value.u)});
      }
      for (size_t k = 0; k < a.length; ++k)
        if (!mask[k] && before[at + k] != after[at + k]) return std::nullopt;
    }
    at += a.length;
  }
  return out;
}

}  // namespace graft::arch
