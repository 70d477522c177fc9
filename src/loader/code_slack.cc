#include "loader/code_slack.h"

#include "arch/x86_64/sigreturn_frame.h"
#include "arch/x86_64/stop_stub.h"
#include "common/address_range.h"

namespace graft {

namespace {

uint64_t code_end(const PatchRecord& patch) { return patch.image_base + page_round_up(patch.code_size); }

}  // namespace

std::optional<uint64_t> call_return_thunk_address(const PatchRecord& patch) {
  uint64_t at = (patch.image_base + patch.code_size + 15) & ~uint64_t(15);
  if (at + sizeof arch::kCallReturnThunk > code_end(patch)) return std::nullopt;
  return at;
}

std::optional<uint64_t> stop_stub_address(const PatchRecord& patch) {
  auto thunk = call_return_thunk_address(patch);
  if (!thunk) return std::nullopt;
  uint64_t at = (*thunk + sizeof arch::kCallReturnThunk + 15) & ~uint64_t(15);
  if (at + arch::kStopStubSize > code_end(patch)) return std::nullopt;
  return at;
}

}  // namespace graft
