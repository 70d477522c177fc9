#include "loader/apply_plan.h"

#include <algorithm>

#include "arch/x86_64/jump.h"
#include "common/error.h"

namespace graft {

namespace {

template <typename Function>  // FunctionReplacement or FunctionRecord
std::string display_name(const Function& f) {
  std::string n = f.demangled.empty() ? f.symbol : f.demangled;
  return f.file.empty() ? n : n + " (" + f.file + ")";
}

}  // namespace

PlannedFunction plan_function(const FunctionReplacement& f, uint64_t bias, const MemoryReader& memory,
                              const std::vector<PatchRecord>& records, pid_t pid,
                              const std::string& target_path) {
  PlannedFunction p;
  p.name = display_name(f);
  p.address = bias + f.address;
  p.size = f.size;
  Bytes running = memory.read({p.address}, f.size);
  uint64_t site_off = arch::patch_site_offset(running);
  if (f.size < site_off + arch::kRedirectSize)
    fail("process {}: function `{}' is {} bytes, too short for the jump", pid, p.name, f.size);
  p.site = p.address + site_off;
  for (const auto& c : f.cold_parts) p.cold.push_back({bias + c.start, c.size});
  p.current.assign(running.begin() + site_off, running.end());
  p.entry.assign(running.begin() + site_off, running.begin() + site_off + arch::kRedirectSize);
  p.original = p.entry;
  p.below = newest_redirect(records, p.address, nullptr, &p.stacked_on);
  if (p.below) {
    if (p.entry != p.below->redirect)
      fail("process {}: the entry of `{}' no longer holds the redirection of patch {}", pid, p.name,
           p.stacked_on->label());
    p.original = p.below->original;
    std::copy(p.original.begin(), p.original.end(), running.begin() + site_off);
  }
  p.original_code.assign(running.begin() + site_off, running.end());
  if (sha256_hex(running) != f.sha256)
    fail("process {}: function `{}' differs from the one the patch was built for (another build of "
         "{}, or modified by another tool)",
         pid, p.name, target_path);
  p.whole = std::move(running);
  return p;
}

PlannedFunction plan_restored_function(const FunctionRecord& f, const Bytes& original,
                                       const MemoryReader& memory) {
  PlannedFunction p;
  p.name = display_name(f);
  p.address = f.address;
  p.size = f.size;
  p.site = f.site;
  p.cold = f.cold_parts;
  Bytes whole = memory.read({f.address}, f.size);
  uint64_t site_off = f.site - f.address;
  p.current.assign(whole.begin() + site_off, whole.end());
  p.entry.assign(whole.begin() + site_off, whole.begin() + site_off + arch::kRedirectSize);
  std::copy(original.begin(), original.end(), whole.begin() + site_off);
  p.original = original;
  p.original_code.assign(whole.begin() + site_off, whole.end());
  p.whole = std::move(whole);
  return p;
}

}  // namespace graft
