// The per-thread consistency models (kGraft's `lazy', livepatch's `hybrid'):
// no global stop. Each replaced function's entry leads to a gate that sends
// every thread to the old or the new code according to the thread's own
// universe (arch/x86_64/gate.h); threads move to the new universe one at a
// time, each stopped alone for microseconds, when nothing of the code being
// replaced is on their stack. See docs/architecture.md, "Per-thread models".
//
//   1. the table of universes: empty, goal old (a thread gets its entry when
//      graft first stops it to move it); or, where threads can move
//      themselves (graft_quiescent, --force), every thread's pointer read
//      first (one short stop each) and listed old, goal new
//   2. write the entry jumps to the gates in running code: int3 first, then
//      the tail, then the first byte, the cores serialized in between (the
//      kernel's text_poke_bp); a thread that hits the int3 traps to graft,
//      which sends it to the gate
//   3. move threads: hybrid stops each pending thread alone (those waiting
//      in the kernel first) and checks its stack; lazy takes only threads blocked in a system call with a clean
//      stack (and threads move themselves in graft_quiescent()); --force
//      moves everyone unchecked
//   4. every thread new: rewrite each entry to jump straight to the new code
//
// Threads created meanwhile start in the goal universe (PTRACE_O_TRACECLONE
// hands them to graft before their first instruction). A revert request
// (from `graft revert', through the transition area) or the timeout reverses
// the transition: the goal becomes old, threads move back the same way, the
// entries get their old bytes back, and the region can go.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "consistency/model.h"
#include "consistency/switch_plan.h"
#include "consistency/transition_area.h"
#include "common/address_range.h"
#include "common/hash.h"
#include "process/maps.h"
#include "process/memory.h"
#include "process/tracer.h"

namespace graft {

// Where a transition stands: threads moving to the new code, moving back to
// the old, or none moving (every thread in one universe, the patch applied).
enum class TransitionPhase { applying, unapplying, applied };

struct TransitionPlan {
  std::vector<SiteWrite> to_gates;  // what is at each site now -> jmp gate
  std::vector<SiteWrite> to_new;    // jmp gate -> jmp replacement
  std::vector<SiteWrite> to_old;    // jmp gate -> what was there before
  // Instruction starts inside displaced bytes -> the same instruction in
  // the old path.
  std::map<uint64_t, uint64_t> interior;
  std::vector<BusyRange> old_code;  // functions being replaced (and what they run now)
  std::vector<BusyRange> new_code;  // the patch's code
  BusyRange gates;                  // gates and old paths
  std::map<uint64_t, uint64_t> gate_of_site;
  // Each replaced function's way in: a thread stopped in its gate, or at
  // the first instruction of its old path or of its replacement, has not
  // started it; graft may move it back to the entry (`site') and switch it.
  struct Entry {
    uint64_t site = 0, gate = 0, old_path = 0, replacement = 0;
    Bytes gate_code;
  };
  std::vector<Entry> entries;
  TransitionAreaLayout area;
  std::vector<Mapping> maps;        // for system calls run in the target
  // libgraft-rt's graft_rt_transition_area / _armed, if the process maps it
  // (graft_quiescent() finds the transition there); 0 otherwise.
  uint64_t quiescent_area = 0, quiescent_armed = 0;
  // Its graft_rt_transition_users (threads inside the area), 0 if the
  // runtime predates it.
  uint64_t quiescent_users = 0;
  // The SIGTRAP handler in the gate pages (arch/x86_64/trap_handler.h).
  uint64_t trap_handler = 0;
  // Exit stubs (arch/x86_64/return_stub.h), each listed in the handler:
  // `return_stub_count' of them from `return_stubs'; 0: none (a record of
  // a graft that predates them).
  uint64_t return_stubs = 0;
  uint32_t return_stub_count = 0;
  // Why the stubs have no unwind information registered with the
  // process's libgcc ("" if they have): see consistency/return_traps.h.
  std::string return_stubs_unwind = "not registered";
};

struct TransitionOptions {
  Model kind = Model::hybrid;  // hybrid or lazy
  bool force = false;
  double timeout_s = 10;
  double report_after_s = 2;
  // Progress lines for the operator (threads moved, threads pending).
  std::function<void(const std::string&)> progress;
  std::string label;  // "pid 42" in progress lines
  // Called at each step, for the record the loader keeps in the process.
  std::function<void(TransitionPhase)> set_state;
};

struct TransitionResult {
  // The transition reached its goal (apply: every thread new; revert: every
  // thread old and the region unused). false: reversed (on request or
  // timeout), the entries as they were before it.
  bool completed = false;
  bool revert_requested = false;  // reversed because `graft revert' asked
  std::string reason;             // why it was reversed
  double transition_ms = 0;       // first gate write to last entry write
  std::vector<double> stalls_us;  // every single-thread stop
  size_t threads = 0;
  size_t forced = 0;              // threads moved unchecked (--force)
  size_t rewound = 0;             // threads moved after being taken back out of a gate
  long breakpoint_hits = 0;
  int passes = 0;
  // Return addresses pointed at an exit stub; of which the thread returned
  // through (moved by its stub), and put back (reversal, revert).
  size_t returns_rewritten = 0, returns_passed = 0, returns_restored = 0;
  // Why a return was not rewritten where it could have helped ("" if none was refused).
  std::string returns_refused;
  // From graft seeing the last return through a stub to the transition's
  // end; < 0 if no thread returned through one.
  double return_to_end_ms = -1;
};

// The return addresses graft pointed at exit stubs, put back on every thread
// that has not returned through its stub yet (all threads stopped, or each
// stopped here): a word is rewritten only if it still holds its stub's
// address and lies in the live part of the thread's stack. Read from the
// stubs themselves, so it works after the graft that wrote them died.
// Returns how many were put back.
size_t restore_return_addresses(Tracer& tracer, const ProcessMemory& memory, uint64_t stubs, uint32_t count);

// Thrown when the transition can neither complete nor be undone: the gates
// stay in use and the region must stay mapped. The process keeps working
// (every thread runs the code of its universe).
class TransitionStuck : public Error {
 public:
  using Error::Error;
};

// Runs a whole apply transition. `plan` must outlive `tracer` (its breakpoint
// handler reads the plan until the tracer detaches). `result` is filled as it goes. Throws
// graft::Error before the gates are live (nothing written), TransitionStuck
// after.
void run_per_thread_apply(Tracer& tracer, const ProcessMemory& memory, const TransitionPlan& plan,
                          const TransitionOptions& options, TransitionResult& result);

// The same transition backwards, for a patch a per-thread transition
// completed (its entries jump straight to the new code): the entries lead to
// the gates again, every thread moves back to old (checked against the
// patch's code and the gates), the entries get what `to_old' writes, and no
// thread is left in the gates or the patch's code. If threads cannot move
// in time, the revert turns around: every thread goes back to new and the
// entries jump to the new code again (completed false, as before). In `plan',
// to_gates holds the direct jumps -> the gate jumps.
void run_per_thread_revert(Tracer& tracer, const ProcessMemory& memory, const TransitionPlan& plan,
                           const TransitionOptions& options, TransitionResult& result);

double percentile(std::vector<double> v, double p);

// Once graft_quiescent() is disarmed: waits, handling the tracer's events,
// until no thread of the process is inside it (libgraft-rt's counter at
// `users'; 0: a runtime without one). Throws if some thread still is after
// `timeout_s'.
void wait_quiescent_users(Tracer& tracer, const ProcessMemory& memory, uint64_t users, double timeout_s);

}  // namespace graft
