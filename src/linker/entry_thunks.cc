#include "linker/entry_thunks.h"

#include <elf.h>

#include "arch/x86_64/entry_thunk.h"
#include "arch/x86_64/relocation.h"
#include "common/error.h"

namespace graft {

namespace {

uint32_t replacement_symbol(const RelocatableObject& object, const FunctionReplacement& f) {
  uint32_t found = 0;
  for (uint32_t i = 1; i < object.symbols.size(); ++i) {
    const ElfSymbol& s = object.symbols[i];
    if (s.name != f.replacement || s.type != STT_FUNC || !s.defined()) continue;
    if (found)
      fail("{}: two functions are named `{}'; cannot tell which replaces `{}'", object.name, s.name, f.symbol);
    found = i;
  }
  if (!found) fail("{}: replacement `{}' of `{}' not found", object.name, f.replacement, f.symbol);
  return found;
}

// The object's .eh_frame, created empty if it has none.
size_t eh_frame_section(RelocatableObject& object) {
  if (const ElfSection* s = object.section(".eh_frame")) {
    if (object.contents.at(s->index).size() % 4)
      fail("{}: .eh_frame is {} bytes, not a whole number of entries", object.name, s->size);
    return s->index;
  }
  ElfSection s;
  s.name = ".eh_frame";
  s.type = SHT_X86_64_UNWIND;
  s.flags = SHF_ALLOC;
  s.align = 8;
  return object.add_section(s, {});
}

}  // namespace

void add_entry_thunks(RelocatableObject& object, const Patch& linked, const std::vector<ThunkRequest>& thunks) {
  for (const ThunkRequest& request : thunks) {
    const FunctionReplacement& f = linked.functions.at(request.function);
    uint32_t replacement = replacement_symbol(object, f);
    arch::EntryThunk thunk = arch::entry_thunk(request.preserved, request.stack_argument_bytes);

    ElfSection text;
    text.name = ".text.graft.thunk." + f.symbol;
    text.type = SHT_PROGBITS;
    text.flags = SHF_ALLOC | SHF_EXECINSTR;
    text.align = 16;
    text.size = thunk.code.size();
    size_t section = object.add_section(text, thunk.code);
    ElfSymbol sym;
    sym.name = "graft.thunk." + f.symbol;
    sym.size = thunk.code.size();
    sym.type = STT_FUNC;
    sym.bind = STB_LOCAL;
    sym.shndx = static_cast<uint16_t>(section);
    uint32_t symbol = object.add_symbol(sym);
    object.relocations[section].push_back({thunk.call_field, arch::pc32_type(), replacement, -4});

    size_t eh = eh_frame_section(object);
    Bytes& cfi = object.contents.at(eh);
    uint64_t at = cfi.size();
    cfi.insert(cfi.end(), thunk.cfi.begin(), thunk.cfi.end());
    object.sections.at(eh).size = cfi.size();
    object.relocations[eh].push_back({at + thunk.cfi_pc_begin, arch::pc32_type(), symbol, 0});

    object.entry_thunks.push_back({f.address, symbol, request.preserved, request.stack_argument_bytes});
  }
}

}  // namespace graft
