#include "loader/ifunc.h"

#include <elf.h>

#include "arch/x86_64/registers.h"
#include "common/error.h"
#include "loader/callbacks.h"
#include "process/auxv.h"
#include "process/maps.h"

namespace graft {

namespace {

const Mapping* mapping_at(const std::vector<Mapping>& maps, uint64_t address) {
  for (const auto& m : maps)
    if (m.contains(address)) return &m;
  return nullptr;
}

bool file_backed(const Mapping& m) {
  return m.path.rfind('/', 0) == 0 && m.path.rfind("/memfd:", 0) != 0;
}

}  // namespace

IfuncResult run_ifunc_resolver(TargetSession& session, const PatchRecord& patch, const IfuncCall& ifunc,
                               double timeout_s) {
  pid_t pid = session.pid();
  const std::string& object = ifunc.object->path;
  std::vector<Mapping> maps = read_maps(pid);
  const Mapping* at = mapping_at(maps, ifunc.resolver);
  if (!at || !at->exec || at->path != object)
    fail("process {}: the resolver of IFUNC `{}' ({:#x}) is not in the code of {}", pid,
         ifunc.name, ifunc.resolver, object);

  uint64_t args[6];
  arch::ifunc_resolver_arguments(auxv_value(pid, AT_HWCAP).value_or(0), args);
  RemoteCallResult r = call_for_patch(session, patch, {ifunc.resolver}, args, timeout_s);
  if (r.status != RemoteCallResult::Status::Returned)
    fail("process {}: the resolver of IFUNC `{}' in {} {}", pid, ifunc.name, object, r.describe());

  uint64_t address = r.value;
  maps = read_maps(pid);
  const Mapping* to = mapping_at(maps, address);
  if (!to || !to->exec || !file_backed(*to))
    fail("process {}: the resolver of IFUNC `{}' in {} returned {:#x}, which is not code of a "
         "file mapped in the process; graft cannot tell which implementation to call",
         pid, ifunc.name, object, address);
  std::string where = to->path == object ? "" : fmt::format(" (in {})", to->path);
  return {address, fmt::format("`{}' (an IFUNC of {}): {:#x}{}, from its resolver run in the process",
                               ifunc.name, object, address, where)};
}

}  // namespace graft
