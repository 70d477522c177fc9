// The record of an applied patch, kept inside the target process itself at
// the start of the patch's memory region, so any later graft invocation can
// list, stack on, or revert it.
//
// The region is a memfd mapping named "graft:<patch id>", which makes it
// visible in /proc/PID/maps. Its first pages hold a fixed header (magic,
// format version, state, stacking sequence number, size of what follows)
// and a JSON description; the patch image follows, page-aligned.
//
// The target's memory may be hostile: read_records() validates every field
// against the process's own mappings before anyone acts on it.
#pragma once
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "consistency/model.h"
#include "patch/patch.h"
#include "process/maps.h"
#include "process/memory.h"

namespace graft {

// Applying / Unapplying: a per-thread transition is in progress (towards the
// new code, or back to the old); the entries lead to the gates, and threads
// run the code of their own universe (see consistency/per_thread_model.h).
enum class RecordState : uint32_t {
  Loading = 1,
  Active = 2,
  Reverting = 3,
  Applying = 4,
  Unapplying = 5,
};
std::string state_name(RecordState s);

struct FunctionRecord {
  std::string symbol, demangled, file;
  uint64_t address = 0, size = 0;  // runtime address of the original function
  uint64_t site = 0;               // runtime address of the redirection
  uint64_t replacement = 0, replacement_size = 0;
  Bytes original;  // bytes at `site` before any graft patch
  Bytes redirect;  // bytes this patch writes at `site`
  std::vector<AddressRange> cold_parts;  // runtime addresses
  // With gates (per-thread models; the stop model's switch gates), 0 / empty
  // otherwise:
  uint64_t gate = 0;       // the function's dispatch entry in the region
  uint64_t old_path = 0;   // its relocated displaced instructions
  uint64_t displaced = 0;  // bytes the entry jump displaces
  Bytes gate_redirect;     // the jump to the gate, written during a transition
  // A function a cumulative patch puts back to its original code, listed
  // only while its per-thread transition runs (the kernel's "nop"
  // functions): `redirect' is then the original bytes, and `replacement'
  // the original's first instructions relocated into the gates.
  bool restores = false;
};

// The gates of a region: the per-thread models' (with a transition area),
// or the stop model's switch gates (without one, with an activation flag).
struct TransitionRecord {
  uint64_t area = 0, area_size = 0;    // transition area (runtime/transition_abi.h), rw-
  uint64_t gates = 0, gates_size = 0;  // gates and old paths, r-x
  uint32_t capacity = 0;               // table entries
  uint32_t report_capacity = 0;
  // The SIGTRAP handler in the gate pages (arch/x86_64/trap_handler.h);
  // 0 in records of a graft that predates it.
  uint64_t trap_handler = 0, trap_sites = 0;
  // The stop model's activation flag (arch::switch_gate_code), 0 if none.
  uint64_t switch_flag = 0;
  // The exit stubs (arch/x86_64/return_stub.h) in the gate pages, each also
  // a site of the trap handler; 0 in records of a graft that predates them.
  uint64_t return_stubs = 0, return_stub_count = 0;
};

// What the transition area says (read by `graft list`), validated.
struct TransitionStatus {
  bool valid = false;
  std::string problem;
  int driver_pid = 0;
  bool driver_alive = false;
  bool revert_requested = false;
  uint32_t threads_total = 0, threads_moved = 0;
  uint64_t report_seq = 0;
  std::vector<std::pair<int, std::string>> pending;  // tid, what holds it
};

struct CallbackRecord {
  Callback::Kind kind = Callback::Kind::PrePatch;
  std::string function;
  uint64_t address = 0;  // runtime address, inside the patch's code
};

// libgcc's view of the patch's unwind information (loader/
// unwind_registration.h): runtime addresses; eh_frame == 0 when the patch
// is not registered with the process's unwinder.
struct UnwindRecord {
  uint64_t eh_frame = 0;   // the patch's .eh_frame, in the region
  uint64_t object = 0;     // libgcc's `struct object' for it, in the region's bss
  uint64_t register_fn = 0, deregister_fn = 0, find_fde_fn = 0;  // in libgcc
};

struct PatchRecord {
  uint64_t region_start = 0, region_size = 0;
  RecordState state = RecordState::Loading;
  uint64_t seq = 0;  // stacking order: higher is newer
  std::string id, name, sha256, target_path, build_id;
  uint64_t image_base = 0, code_size = 0;
  std::vector<FunctionRecord> functions;
  std::vector<CallbackRecord> callbacks;  // run at revert (pre/post_unpatch)
  bool cumulative = false;
  // A cumulative patch whose switch is over but whose record still lists
  // the functions it put back and old paths into the replaced patches
  // (settle_replace(), loader/per_thread.h): false from its apply until
  // then.
  bool settled = true;
  int64_t applied_at = 0;  // unix time
  pid_t graft_pid = 0;
  Model model = Model::stop;  // consistency model it was applied with
  TransitionRecord transition;
  UnwindRecord unwind;
  // The return stubs' unwind information (loader/unwind_registration.h);
  // eh_frame == 0 if not planned.
  UnwindRecord stub_unwind;

  bool in_transition() const { return state == RecordState::Applying || state == RecordState::Unapplying; }
  bool per_thread() const { return transition.area != 0; }
  bool has_gates() const { return transition.gates_size != 0; }
  bool switch_gates() const { return transition.switch_flag != 0; }

  AddressRange code() const { return {image_base, code_size}; }
  const CallbackRecord* callback(Callback::Kind kind) const {
    for (const auto& c : callbacks)
      if (c.kind == kind) return &c;
    return nullptr;
  }
  // Named by `which`: its name, or its id or a prefix of it.
  bool matches(const std::string& which) const {
    return name == which || (!which.empty() && id.rfind(which, 0) == 0);
  }
  std::string label() const { return fmt::format("{} ({})", name, id); }
};

// The runtime graft injected into the process (region "graft:rt"): one per
// process, shared by every patch, never removed (it holds the shadow
// variables). Its record has the same header; its JSON says kind "runtime".
struct RuntimeRecord {
  uint64_t region_start = 0, region_size = 0;
  uint64_t image_base = 0, code_size = 0;
  std::string sha256;  // of the runtime object
  std::map<std::string, uint64_t> exports;  // runtime addresses
  int64_t installed_at = 0;
  pid_t graft_pid = 0;
};

constexpr const char* kRegionNamePrefix = "graft:";
constexpr const char* kRuntimeRegionName = "rt";
uint64_t runtime_record_pages(const RuntimeRecord& r);
Bytes encode_runtime_record(const RuntimeRecord& r);
// Bytes of header + JSON, page-rounded: where the image starts.
uint64_t record_pages(const PatchRecord& r);
Bytes encode_record(const PatchRecord& r);
void write_record_state(const ProcessMemory& memory, const PatchRecord& r, RecordState state);
// Reads the record's state word again (it changes while a transition runs).
RecordState read_record_state(const ProcessMemory& memory, const PatchRecord& r);
TransitionStatus read_transition_status(const ProcessMemory& memory, const PatchRecord& r);

struct InvalidRegion {
  AddressRange range;    // every mapping of the region's memfd
  bool blank = false;    // its first page is all zero: nothing was written
  std::string problem;
};

struct RecordScan {
  std::vector<PatchRecord> records;  // sorted by seq
  std::optional<RuntimeRecord> runtime;
  std::vector<std::string> problems; // regions whose record is unreadable or invalid
  std::vector<InvalidRegion> invalid;  // the same regions, for recovery
};
RecordScan read_records(pid_t pid, const std::vector<Mapping>& maps, const ProcessMemory& memory);

// The record at the start of `region` (header and JSON, as read from the
// process; bytes past the JSON are ignored), checked against the process's
// mappings. Pure, so that fuzz/patch_record_fuzzer.cc can feed it anything.
// Throws graft::Error naming what is wrong.
PatchRecord parse_record(std::span<const uint8_t> bytes, const Mapping& region,
                         const std::vector<Mapping>& maps);
// The same for the runtime's record (region "graft:rt").
RuntimeRecord parse_runtime_record(std::span<const uint8_t> bytes, const Mapping& region,
                                   const std::vector<Mapping>& maps);

// The newest active patch of the function at `address` (records sorted by
// seq), leaving `excluded` out; nullptr if none. `owner` receives its record.
const FunctionRecord* newest_redirect(const std::vector<PatchRecord>& records, uint64_t address,
                                      const PatchRecord* excluded = nullptr,
                                      const PatchRecord** owner = nullptr);

}  // namespace graft
