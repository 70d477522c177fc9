#include "linker/register_contract.h"

#include <elf.h>

#include <map>
#include <optional>
#include <set>
#include <variant>
#include <vector>

#include "arch/x86_64/calling_convention.h"
#include "arch/x86_64/entry_thunk.h"
#include "arch/x86_64/instruction.h"
#include "common/error.h"
#include "elf/compile_units.h"
#include "elf/function_signature.h"

namespace graft {

namespace {

using arch::Instruction;
using arch::RegisterSet;
using Flow = Instruction::Flow;

constexpr size_t kMaxSteps = 50000;
constexpr size_t kMaxPropagation = 2000;

struct Function {
  std::string name;
  uint64_t start = 0, size = 0;
  bool contains(uint64_t a) const { return a >= start && a - start < size; }
};

struct CallSite {
  const Function* caller;
  uint64_t at, return_address;
  bool tail;
};

// The target's functions, decoded on demand from its executable segments.
class CodeIndex {
 public:
  // `assume_calls_read_arguments`: a call to unknown code (PLT, indirect)
  // reads every argument register, and a return reads the return registers.
  // Sound, and the source of most false alarms; without it only reads by
  // instructions count.
  CodeIndex(const ElfFile& target, const CompileUnits& units, bool assume_calls_read_arguments)
      : target_(target), units_(units), pessimistic_(assume_calls_read_arguments) {
    for (const auto& seg : target.load_segments())
      if (seg.flags & PF_X) segments_.push_back({seg.vaddr, target.read_vaddr(seg.vaddr, seg.filesz)});
    std::set<uint64_t> seen;
    for (const auto& s : target.symbols())
      if (s.type == STT_FUNC && s.size > 0 && s.defined() && code(s.value, s.size) && seen.insert(s.value).second)
        functions_.push_back({s.name, s.value, s.size});
    for (const auto& f : functions_) by_start_[f.start] = &f;
  }

  const Function* at(uint64_t start) const {
    auto it = by_start_.find(start);
    return it == by_start_.end() ? nullptr : it->second;
  }

  // The function's instructions by address, decoded once: every analysis
  // below walks the same functions many times.
  const std::map<uint64_t, Instruction>& instructions(const Function& f) {
    auto [it, fresh] = decoded_.try_emplace(f.start);
    if (!fresh) return it->second;
    const uint8_t* p = code(f.start, f.size);
    for (uint64_t off = 0; p && off < f.size;) {
      auto ins = arch::decode_instruction({p + off, f.size - off}, f.start + off);
      if (!ins) {
        ++off;
        continue;
      }
      it->second.emplace(ins->address, *ins);
      off += ins->length;
    }
    return it->second;
  }

  // Call-clobbered registers a call to `f` may change, as IPA-RA sees it.
  RegisterSet clobbers(const Function& f) {
    if (auto it = clobbers_.find(f.start); it != clobbers_.end()) return it->second;
    const RegisterSet all = arch::caller_saved_registers();
    clobbers_[f.start] = all;  // a cycle counts as "everything"
    RegisterSet set = 0;
    for (const auto& [address, ins] : instructions(f)) {
      set |= ins.writes;
      if (ins.flow == Flow::IndirectCall) set = all;
      if ((ins.flow == Flow::Call || ins.flow == Flow::Jump) && ins.target && !f.contains(*ins.target)) {
        const Function* callee = at(*ins.target);
        set |= callee && sees(f.start, callee->start) ? clobbers(*callee) : all;
      }
      if (set == all) break;
    }
    return clobbers_[f.start] = set & all;
  }

  // Call-clobbered registers `f` may read before writing them: its inputs.
  RegisterSet live_in(const Function& f) {
    if (auto it = live_in_.find(f.start); it != live_in_.end()) return it->second;
    live_in_[f.start] = arch::argument_registers();  // a cycle counts as "all arguments"
    RegisterSet in = relied_after(f, f.start, arch::caller_saved_registers(), false);
    return live_in_[f.start] = in;
  }

  // Call-clobbered registers that may hold a value of `h`'s at `address`:
  // its inputs, what it wrote, what calls returned, and what calls left
  // untouched. A register holding nothing of `h`'s cannot be relied on.
  RegisterSet defined_at(const Function& h, uint64_t address) {
    auto& memo = defined_[h.start];
    if (memo.empty()) {
      const auto& code = instructions(h);
      const RegisterSet all = arch::caller_saved_registers();
      std::vector<std::pair<uint64_t, RegisterSet>> work{{h.start, live_in(h)}};
      size_t steps = 0;
      while (!work.empty() && steps < kMaxSteps) {
        auto [addr, def] = work.back();
        work.pop_back();
        for (; steps < kMaxSteps; ++steps) {
          auto it = code.find(addr);
          if (it == code.end()) break;
          auto [slot, fresh] = memo.try_emplace(addr, 0);
          if (!fresh && (def & ~slot->second) == 0) break;
          slot->second |= def;
          const Instruction& ins = it->second;
          def |= ins.writes & all;
          if (ins.flow == Flow::Call || ins.flow == Flow::IndirectCall) {
            const Function* c = ins.target ? at(*ins.target) : nullptr;
            def = (def & ~(c && sees(h.start, c->start) ? clobbers(*c) : all)) | arch::return_registers();
          }
          if (ins.flow == Flow::Return || ins.flow == Flow::IndirectJump || ins.flow == Flow::Stop)
            break;
          if (ins.flow == Flow::Jump) {
            if (!h.contains(*ins.target)) break;
            addr = *ins.target;
            continue;
          }
          if (ins.flow == Flow::ConditionalJump && h.contains(*ins.target))
            work.push_back({*ins.target, def});
          addr += ins.length;
        }
      }
      if (steps >= kMaxSteps) memo.clear();
    }
    auto it = memo.find(address);
    // Not reached by the analysis: assume anything may be there.
    return it == memo.end() ? arch::caller_saved_registers() : it->second;
  }

  // Bytes `h` has pushed or reserved below its return address at `address`
  // (so %rsp = entry %rsp - depth there), or nullopt where graft cannot
  // tell (a frame pointer or alloca sets %rsp, or paths disagree).
  std::optional<int64_t> stack_depth_at(const Function& h, uint64_t address) {
    constexpr int64_t kUnknown = INT64_MIN;
    auto& memo = depth_[h.start];
    if (memo.empty()) {
      const auto& code = instructions(h);
      std::vector<std::pair<uint64_t, int64_t>> work{{h.start, 0}};
      size_t steps = 0;
      while (!work.empty() && steps < kMaxSteps) {
        auto [addr, depth] = work.back();
        work.pop_back();
        for (; steps < kMaxSteps; ++steps) {
          auto it = code.find(addr);
          if (it == code.end()) break;
          auto [slot, fresh] = memo.try_emplace(addr, depth);
          if (!fresh) {
            if (slot->second != depth) slot->second = kUnknown;
            break;
          }
          const Instruction& ins = it->second;
          if (!ins.stack_change) break;  // what follows is not counted
          depth -= *ins.stack_change;
          if (ins.flow == Flow::Return || ins.flow == Flow::IndirectJump || ins.flow == Flow::Stop) break;
          if (ins.flow == Flow::Jump) {
            if (!h.contains(*ins.target)) break;
            addr = *ins.target;
            continue;
          }
          if (ins.flow == Flow::ConditionalJump && h.contains(*ins.target)) work.push_back({*ins.target, depth});
          addr += ins.length;
        }
      }
    }
    auto it = memo.find(address);
    if (it == memo.end() || it->second == kUnknown) return std::nullopt;
    return it->second;
  }

  const std::vector<CallSite>& callers(uint64_t start) {
    if (!sites_ready_) {
      for (const auto& f : functions_)
        for (const auto& [address, ins] : instructions(f))
          if ((ins.flow == Flow::Call || ins.flow == Flow::Jump) && ins.target &&
              !f.contains(*ins.target))
            sites_[*ins.target].push_back(
                {&f, ins.address, ins.address + ins.length, ins.flow == Flow::Jump});
      sites_ready_ = true;
    }
    static const std::vector<CallSite> none;
    auto it = sites_.find(start);
    return it == sites_.end() ? none : it->second;
  }

  // Registers of `candidates` that `h` may read, after the call returning to
  // `ra`, before overwriting them.
  RegisterSet relied_after(const Function& h, uint64_t ra, RegisterSet candidates,
                           bool returns_read = true) {
    const auto& code = instructions(h);
    RegisterSet relied = 0;
    std::map<uint64_t, RegisterSet> seen;
    std::vector<std::pair<uint64_t, RegisterSet>> work{{ra, candidates}};
    size_t steps = 0;
    while (!work.empty()) {
      auto [addr, live] = work.back();
      work.pop_back();
      for (;;) {
        if (!live) break;
        if (++steps > kMaxSteps) return relied | live;
        auto it = code.find(addr);
        if (it == code.end()) {
          relied |= live;  // left the decoded body: assume the worst
          break;
        }
        RegisterSet& s = seen[addr];
        if ((live & ~s) == 0) break;
        s |= live;
        const Instruction& ins = it->second;
        relied |= ins.reads & live;
        live &= ~ins.overwrites;
        bool stop = false;
        switch (ins.flow) {
          case Flow::Next:
            break;
          case Flow::Call: {
            const Function* c = ins.target ? at(*ins.target) : nullptr;
            relied |= (c ? live_in(*c) : unknown_call_reads()) & live;
            live &= ~(c && sees(h.start, c->start) ? clobbers(*c) : arch::caller_saved_registers());
            break;
          }
          case Flow::IndirectCall:
            relied |= unknown_call_reads() & live;
            live &= ~arch::caller_saved_registers();
            break;
          case Flow::Return:
            if (returns_read && pessimistic_) relied |= arch::return_registers() & live;
            stop = true;
            break;
          case Flow::Jump:
            if (h.contains(*ins.target)) {
              addr = *ins.target;
              continue;
            }
            {  // tail call
              const Function* c = at(*ins.target);
              relied |= (c ? live_in(*c) : unknown_call_reads()) & live;
            }
            stop = true;
            break;
          case Flow::ConditionalJump:
            if (h.contains(*ins.target))
              work.push_back({*ins.target, live});
            else
              relied |= live;
            break;
          case Flow::IndirectJump:
            relied |= live;
            stop = true;
            break;
          case Flow::Stop:
            stop = true;
            break;
        }
        if (stop) break;
        addr += ins.length;
      }
    }
    return relied;
  }

 public:
  // Whether code at `caller` may have been compiled knowing the registers
  // `callee` uses: -fipa-ra on in the caller's unit, and the callee in the
  // same unit (or LTO). Without DWARF, assume it was.
  bool sees(uint64_t caller, uint64_t callee) const {
    const CompileUnit* a = units_.at(caller);
    if (!a) return true;
    if (!a->ipa_ra) return false;
    const CompileUnit* b = units_.at(callee);
    return !b || a == b || a->lto || b->lto;
  }

 private:
  RegisterSet unknown_call_reads() const { return pessimistic_ ? arch::argument_registers() : 0; }

  const uint8_t* code(uint64_t vaddr, uint64_t size) const {
    for (const auto& [start, bytes] : segments_)
      if (vaddr >= start && vaddr - start <= bytes.size() && size <= bytes.size() - (vaddr - start))
        return bytes.data() + (vaddr - start);
    return nullptr;
  }

  const ElfFile& target_;
  const CompileUnits& units_;
  bool pessimistic_;
  std::vector<std::pair<uint64_t, Bytes>> segments_;
  std::vector<Function> functions_;
  std::map<uint64_t, const Function*> by_start_;
  std::map<uint64_t, std::map<uint64_t, Instruction>> decoded_;
  std::map<uint64_t, RegisterSet> clobbers_;
  std::map<uint64_t, RegisterSet> live_in_;
  std::map<uint64_t, std::map<uint64_t, RegisterSet>> defined_;
  std::map<uint64_t, std::map<uint64_t, int64_t>> depth_;
  std::map<uint64_t, std::vector<CallSite>> sites_;
  bool sites_ready_ = false;
};

// What a replacement may change: its own writes; any call may change all.
RegisterSet replacement_clobbers(const Patch& patch, const FunctionReplacement& f) {
  RegisterSet set = 0;
  const uint64_t start = f.replacement_offset;
  const uint64_t size = f.replacement_size ? f.replacement_size : patch.layout.code_size - start;
  for (uint64_t off = 0; off < size;) {
    auto ins = arch::decode_instruction({patch.image.data() + start + off, size - off}, start + off);
    if (!ins) return arch::caller_saved_registers();
    set |= ins->writes;
    if (ins->flow == Flow::Call || ins->flow == Flow::IndirectCall || ins->flow == Flow::IndirectJump ||
        (ins->flow == Flow::Jump && (*ins->target < start || *ins->target >= start + size)))
      return arch::caller_saved_registers();
    off += ins->length;
  }
  return set & arch::caller_saved_registers();
}

}  // namespace

namespace {

struct Breakage {
  std::string caller, callee;
  uint64_t at = 0;
  RegisterSet relied = 0;
};

// Every caller that relies on a register of `extra`, directly or through
// callers whose own clobber set grows.
struct Reliance {
  RegisterSet extra = 0;             // what the replacement may change and the original never does
  RegisterSet relied = 0;            // union over all callers
  std::vector<Breakage> breakages;   // in the order found
  std::string wide_caller;           // a caller using ymm/zmm registers, if any relies on vectors
};

bool uses_wide_vectors(CodeIndex& index, const Function& f) {
  for (const auto& [address, ins] : index.instructions(f))
    if (ins.wide_vector) return true;
  return false;
}

Reliance find_reliance(CodeIndex& index, const std::string& target_name, const Patch& patch,
                       const FunctionReplacement& f) {
  Reliance out;
  const Function* original = index.at(f.address);
  if (!original) return out;
  out.extra = replacement_clobbers(patch, f) & ~index.clobbers(*original);
  if (!out.extra) return out;
  // Callers of a function whose effective clobber set grows by `grown`.
  std::vector<std::pair<const Function*, RegisterSet>> work{{original, out.extra}};
  std::map<uint64_t, RegisterSet> done;
  size_t steps = 0;
  while (!work.empty()) {
    auto [g, grown] = work.back();
    work.pop_back();
    if ((grown & ~done[g->start]) == 0) continue;
    done[g->start] |= grown;
    if (++steps > kMaxPropagation)
      fail("{}: cannot verify that replacing `{}' keeps the registers its callers rely on "
           "(too many callers to follow)",
           target_name, f.symbol);
    for (const CallSite& site : index.callers(g->start)) {
      if (!index.sees(site.caller->start, g->start)) continue;
      if (!site.tail) {
        RegisterSet held = grown & index.defined_at(*site.caller, site.at);
        RegisterSet r = held ? index.relied_after(*site.caller, site.return_address, held) : 0;
        if (r) {
          out.breakages.push_back({site.caller->name, g->name, site.at, r});
          out.relied |= r;
          if (r & ~RegisterSet(0xffff) && out.wide_caller.empty() && uses_wide_vectors(index, *site.caller))
            out.wide_caller = site.caller->name;
        }
      }
      RegisterSet passed = grown & ~index.clobbers(*site.caller);
      if (passed) work.push_back({site.caller, passed});
    }
  }
  return out;
}

// Whether the replacement may need the ABI's 16-byte stack alignment: it
// calls something or touches 16 bytes of memory at once (SSE spills).
bool replacement_needs_alignment(const Patch& patch, const FunctionReplacement& f) {
  const uint64_t start = f.replacement_offset;
  const uint64_t size = f.replacement_size ? f.replacement_size : patch.layout.code_size - start;
  for (uint64_t off = 0; off < size;) {
    auto ins = arch::decode_instruction({patch.image.data() + start + off, size - off}, start + off);
    if (!ins) return true;
    if (ins->flow == Flow::Call || ins->flow == Flow::IndirectCall || ins->wide_memory) return true;
    off += ins->length;
  }
  return false;
}

// A direct caller that calls the original with %rsp 8 bytes off the ABI's
// alignment: GCC's -fipa-stack-alignment (on at -O2) skips the alignment
// for a callee of the same unit it knows needs none.
std::optional<CallSite> misaligned_caller(CodeIndex& index, const FunctionReplacement& f) {
  const Function* original = index.at(f.address);
  if (!original) return std::nullopt;
  for (const CallSite& site : index.callers(original->start)) {
    if (site.tail || !index.sees(site.caller->start, original->start)) continue;
    auto depth = index.stack_depth_at(*site.caller, site.at);
    if (depth && *depth % 16 == 0) return site;
  }
  return std::nullopt;
}

// The callers, for messages ("`caller' (calls `small' at 0x11d0, keeps
// rdx, rsi)"), the first three.
std::string describe_callers(const std::vector<Breakage>& breakages) {
  std::string out;
  size_t shown = 0;
  for (const auto& b : breakages) {
    if (shown == 3) {
      out += fmt::format(" and {} more", breakages.size() - shown);
      break;
    }
    if (shown++) out += ", ";
    out += fmt::format("`{}' (calls `{}' at {:#x}, keeps {})", b.caller, b.callee, b.at,
                       arch::register_names(b.relied));
  }
  return out;
}

// The entry thunk that keeps `relied` for callers of `f`, or why there is
// none.
std::variant<ThunkRequest, std::string> plan_thunk(const ElfFile& target, const FunctionReplacement& f,
                                                   const Reliance& r) {
  if (!r.wide_caller.empty())
    return fmt::format("`{}' uses 256- or 512-bit vector registers, and the thunk keeps only "
                       "their low 128 bits", r.wide_caller);
  std::optional<FunctionSignature> sig = function_signature(target.path(), f.address, f.symbol);
  if (!sig && !target.symbols_file().empty() && target.symbols_file() != target.path())
    sig = function_signature(target.symbols_file(), f.address, f.symbol);
  if (!sig)
    return fmt::format("no DWARF describes the parameters of `{}' (build the target with -g, or "
                       "install its debug file)", f.symbol);
  auto shape = arch::call_shape(*sig);
  if (auto* why = std::get_if<std::string>(&shape)) return fmt::format("for `{}', {}", f.symbol, *why);
  const auto& s = std::get<arch::CallShape>(shape);
  if (s.stack_argument_bytes > arch::kMaxThunkStackArgumentBytes)
    return fmt::format("`{}' takes {} bytes of arguments on the stack, more than the thunk copies ({})",
                       f.symbol, s.stack_argument_bytes, arch::kMaxThunkStackArgumentBytes);
  ThunkRequest t;
  t.preserved = r.relied & ~s.return_registers;
  t.stack_argument_bytes = s.stack_argument_bytes;
  return t;
}

}  // namespace

RegisterContract check_register_contract(const ElfFile& target, const Patch& patch, bool thunks) {
  // A stripped target's units are described by its separate debug file.
  CompileUnits units(target.path());
  if (units.empty() && !target.symbols_file().empty() && target.symbols_file() != target.path())
    units = CompileUnits(target.symbols_file());
  CodeIndex definite(target, units, false), possible(target, units, true);
  RegisterContract out;
  // Where no thunk is made (a thunk aligns the stack itself).
  auto warn_if_misaligned = [&](const FunctionReplacement& f) {
    auto site = misaligned_caller(definite, f);
    if (!site || !replacement_needs_alignment(patch, f)) return;
    out.warnings.push_back(fmt::format(
        "`{}' calls `{}' at {:#x} with the stack 8 bytes off the ABI's 16-byte alignment (GCC "
        "-fipa-stack-alignment: it knows `{}' needs none); the replacement calls functions or keeps "
        "16-byte values on the stack and may fault there (build the target with "
        "-fno-ipa-stack-alignment, or keep the replacement free of calls)",
        site->caller->name, f.symbol, site->at, f.symbol));
  };
  for (size_t i = 0; i < patch.functions.size(); ++i) {
    const FunctionReplacement& f = patch.functions[i];
    Reliance sure = find_reliance(definite, target.name(), patch, f);
    Reliance maybe = find_reliance(possible, target.name(), patch, f);
    if (!sure.relied && !maybe.relied) {
      warn_if_misaligned(f);
      continue;
    }
    // Callers that may rely on a register (through a call graft cannot
    // count the arguments of) get it kept as well, when a thunk is made.
    Reliance all = maybe;
    all.relied |= sure.relied;
    if (all.wide_caller.empty()) all.wide_caller = sure.wide_caller;
    std::variant<ThunkRequest, std::string> plan =
        thunks ? plan_thunk(target, f, all) : std::string("entry thunks are off (GRAFT_ENTRY_THUNKS)");
    if (auto* t = std::get_if<ThunkRequest>(&plan)) {
      if (!t->preserved) continue;  // only return registers: the replacement's result
      t->function = i;
      t->note = fmt::format(
          "`{}' gets an entry thunk that keeps {} unchanged across the replacement{}, for callers "
          "that rely on them (GCC -fipa-ra): {}",
          f.symbol, arch::register_names(t->preserved),
          t->stack_argument_bytes
              ? fmt::format(" and copies its {} bytes of stack arguments", t->stack_argument_bytes)
              : "",
          describe_callers(sure.breakages.empty() ? maybe.breakages : sure.breakages));
      out.thunks.push_back(std::move(*t));
      continue;
    }
    const std::string& why = std::get<std::string>(plan);
    if (!sure.breakages.empty() && thunks) {
      const Breakage& b = sure.breakages.front();
      fail("{}: replacing `{}' would break `{}', which calls `{}' at {:#x} and keeps {} live "
           "across the call, relying on it staying unchanged (GCC -fipa-ra); the replacement may "
           "change {}, and graft cannot keep them with an entry thunk: {}. Rebuild the target "
           "with -fno-ipa-ra, or replace `{}' as well",
           target.name(), f.symbol, b.caller, b.callee, b.at, arch::register_names(b.relied),
           arch::register_names(sure.extra), why, b.caller);
    }
    for (const auto& b : sure.breakages)
      out.warnings.push_back(fmt::format(
          "`{}' calls `{}' at {:#x} and keeps {} live across the call (GCC -fipa-ra); the "
          "replacement of `{}' breaks it ({})",
          b.caller, b.callee, b.at, arch::register_names(b.relied), f.symbol, why));
    if (sure.breakages.empty() && !maybe.breakages.empty()) {
      const Breakage& b = maybe.breakages.front();
      out.warnings.push_back(fmt::format(
          "`{}' calls `{}' at {:#x} and may pass {} through to a later call or its own caller "
          "(graft cannot tell how many arguments that call takes); if it does and the target was "
          "built with GCC's -fipa-ra (the default at -O2), the replacement of `{}' breaks it, "
          "and graft cannot keep them with an entry thunk: {}",
          b.caller, b.callee, b.at, arch::register_names(b.relied), f.symbol, why));
    }
    warn_if_misaligned(f);
  }
  return out;
}

}  // namespace graft
