// Binds a patch's calls to the in-process runtime (graft/runtime.h) and
// injects the runtime when the process has none.
//
// There is exactly one runtime per process, so that every patch, stacked or
// cumulative, sees the same shadow variables:
//   1. a "graft:rt" region graft injected earlier (its record lists the
//      addresses of its functions): always used once it exists;
//   2. otherwise libgraft-rt.so, if the process maps it (linked or
//      LD_PRELOADed): its exported graft_* symbols;
//   3. otherwise graft links its built-in copy of the runtime (graft-rt.o,
//      embedded in graft) against the process's libc, maps it as the region
//      "graft:rt" with a record, and binds to it. The region stays for the
//      life of the process (unless the apply that created it fails).
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "linker/object_linker.h"
#include "loader/loaded_objects.h"
#include "loader/patch_record.h"
#include "loader/target_session.h"

namespace graft {

// graft's built-in runtime, linked from the embedded graft-rt.o once.
const LinkedRuntime& builtin_runtime();
// True if `name` is a function of the runtime's API (graft_shadow_get, ...).
bool is_runtime_function(const std::string& name);

struct RuntimeBinding {
  std::map<std::string, uint64_t> addresses;  // runtime function -> address
  std::string provider;                       // for messages
  // Set when this call injected the runtime (to remove it if the apply fails).
  std::optional<RuntimeRecord> injected;
};

// `needed`: the runtime functions the patch calls, with symbols looked up
// as `target` sees them. The session must be attached; a stopped thread is
// used to create the region if needed.
RuntimeBinding bind_runtime(const std::set<std::string>& needed, TargetSession& session,
                            const LoadedObject& target);

}  // namespace graft
