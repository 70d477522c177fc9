#include "loader/callbacks.h"

namespace graft {

std::string CallbackRun::describe(Callback::Kind kind, const PatchRecord& patch) const {
  return fmt::format("{} callback `{}' of patch {} {}", callback_kind_name(kind), function,
                     patch.label(), result.describe());
}

std::optional<CallbackRun> run_callback(Tracer& tracer, const ProcessMemory& memory,
                                        const PatchRecord& patch, Callback::Kind kind,
                                        double timeout_s) {
  const CallbackRecord* c = patch.callback(kind);
  if (!c) return std::nullopt;
  pid_t tid = tracer.is_stopped(tracer.pid()) ? tracer.pid() : 0;
  bool stopped_here = false;
  if (!tid) {
    tid = tracer.stopped_thread();  // stops one if none is
    stopped_here = true;
  }
  CallbackRun run{c->function, remote_call(tracer, memory, tid, {c->address}, {patch.region_start},
                                           timeout_s)};
  if (stopped_here) tracer.resume(tid);
  return run;
}

}  // namespace graft
