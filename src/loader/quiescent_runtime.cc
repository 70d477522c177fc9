#include "loader/quiescent_runtime.h"

#include <algorithm>

#include "common/error.h"
#include "consistency/per_thread_model.h"
#include "loader/symbol_resolver.h"

namespace graft {

QuiescentRuntime find_quiescent_runtime(TargetSession& session, const LoadedObject& target) {
  QuiescentRuntime rt;
  SymbolResolver resolver(session, target);
  try {
    rt.area = resolver.resolve("graft_rt_transition_area");
    rt.armed = resolver.resolve("graft_rt_transition_armed");
  } catch (const Error&) {
    return {};  // no libgraft-rt: threads move only when graft moves them
  }
  try {
    rt.users = resolver.resolve("graft_rt_transition_users");
  } catch (const Error&) {
    // An older libgraft-rt.
  }
  return rt;
}

QuiescentRuntime find_quiescent_runtime(TargetSession& session, const std::string& build_id) {
  const auto& objects = session.objects();
  auto target = std::find_if(objects.begin(), objects.end(),
                             [&](const LoadedObject& o) { return !o.build_id.empty() && o.build_id == build_id; });
  if (target == objects.end()) return {};
  return find_quiescent_runtime(session, *target);
}

void disarm_abandoned(Tracer& tracer, const QuiescentRuntime& rt, const ProcessMemory& memory, uint64_t area,
                      double timeout_s) {
  if (!rt.area) return;
  uint64_t published = 0;
  uint8_t armed = 0;
  if (!memory.try_read({rt.area}, &published, sizeof published) || !memory.try_read({rt.armed}, &armed, 1))
    fail("process {}: libgraft-rt's transition state is unreadable", memory.pid());
  if (published != area || !armed) return;
  uint8_t off = 0;
  memory.write({rt.armed}, {&off, 1});
  wait_quiescent_users(tracer, memory, rt.users, timeout_s);
}

}  // namespace graft
