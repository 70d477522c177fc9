#include "loader/unload.h"

#include "common/error.h"
#include "common/fault_point.h"
#include "consistency/stop_model.h"
#include "loader/region.h"

namespace graft {

void unload_patch(Tracer& tracer, const ProcessMemory& memory, const std::vector<Mapping>& maps,
                  const std::vector<PatchRecord>& records, const PatchRecord& rec,
                  const OperationOptions& options, SwitchResult& s, size_t* redirected,
                  const std::function<void()>& after_switch) {
  SwitchPlan plan;
  plan.busy.push_back({rec.code(), "the code of patch " + rec.label()});
  for (const auto& f : rec.functions) {
    // Only an entry that holds this patch's jump is written; a patch lower
    // in the stack leaves the entry to the one above it.
    Bytes now = memory.read({f.site}, f.redirect.size());
    if (now != f.redirect) continue;
    const FunctionRecord* below = newest_redirect(records, f.address, &rec);
    plan.writes.push_back({f.symbol, {f.site}, now, below ? below->redirect : f.original});
  }
  if (redirected) *redirected = plan.writes.size();

  StopOptions stop;
  stop.timeout_s = options.timeout_s;
  stop.detach_after = false;
  // Marked before the first write: a revert interrupted midway is then
  // completed by the next graft, never mistaken for an active patch.
  bool marked = false;
  stop.before_writes = [&] {
    if (rec.state == RecordState::Reverting) return;
    write_record_state(memory, rec, RecordState::Reverting);
    marked = true;
  };
  try {
    run_stop_model(tracer, memory, plan, stop, [] { fault_point("reverted"); }, s);
  } catch (...) {
    // The stop model undid its writes: the patch is as it was.
    if (marked) write_record_state(memory, rec, rec.state);
    throw;
  }
  if (after_switch) after_switch();
  // No thread is in the patch's code and nothing leads there any more.
  remove_region(tracer, memory, maps, rec.region_start, rec.region_size);
  fault_point("region-removed");
}

}  // namespace graft
