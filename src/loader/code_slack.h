// What graft keeps in the slack after a patch's code, in the same r-x
// pages: the call-return thunk (arch::kCallReturnThunk, see
// process/remote_call.h), 16-aligned after the code, then the stop model's
// return trap (arch/x86_64/stop_stub.h). Each is nullopt where the code
// leaves no room for it in its last page.
#pragma once
#include <cstdint>
#include <optional>

#include "loader/patch_record.h"

namespace graft {

std::optional<uint64_t> call_return_thunk_address(const PatchRecord& patch);
std::optional<uint64_t> stop_stub_address(const PatchRecord& patch);

}  // namespace graft
