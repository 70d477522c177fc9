#include "loader/revert_during_transition.h"

#include <cstddef>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "process/maps.h"
#include "runtime/transition_abi.h"

namespace graft {

namespace {

bool region_present(pid_t pid, uint64_t start) {
  for (const auto& m : read_maps(pid))
    if (m.start == start) return true;
  return false;
}

}  // namespace

bool transition_driven(const ProcessMemory& memory, const PatchRecord& record) {
  TransitionStatus st = read_transition_status(memory, record);
  return st.valid && st.driver_alive;
}

void refuse_if_in_transition(const std::vector<PatchRecord>& records, pid_t pid,
                             const ProcessMemory& memory, const PatchRecord* except) {
  for (const auto& r : records) {
    if (&r == except || !r.in_transition() || !transition_driven(memory, r)) continue;
    fail("process {}: patch {} is in a per-thread transition ({}); wait until it ends, or revert it",
         pid, r.label(), state_name(r.state));
  }
}

int revert_during_transition(const PatchRecord& rec, pid_t pid, const ProcessMemory& memory,
                              double timeout_s) {
  TransitionStatus st = read_transition_status(memory, rec);
  if (!st.valid) fail("process {}: {}", pid, st.problem);
  if (!st.driver_alive)
    fail("process {}: patch {} is {}, but the graft that drove the transition (pid {}) is gone; the "
         "process keeps running (each thread in its universe), and graft cannot finish the "
         "transition without it",
         pid, rec.label(), state_name(rec.state), st.driver_pid);
  if (rec.state == RecordState::Applying) {
    uint8_t one = 1;
    memory.write({rec.transition.area + offsetof(graft_transition_header, revert_request)}, {&one, 1});
  }
  // The driver rolls back with its own timeout: allow for it twice over.
  auto deadline = Clock::now() + std::chrono::duration<double>(std::max(timeout_s, 1.0) * 2 + 5);
  while (region_present(pid, rec.region_start)) {
    RecordState s = read_record_state(memory, rec);
    if (s == RecordState::Active)
      fail("process {}: the transition of patch {} completed before graft {} saw the revert "
           "request; run `graft revert' again",
           pid, rec.label(), st.driver_pid);
    if (Clock::now() > deadline)
      fail("process {}: graft {} did not finish reversing the transition of patch {} in time",
           pid, st.driver_pid, rec.label());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return st.driver_pid;
}

}  // namespace graft
