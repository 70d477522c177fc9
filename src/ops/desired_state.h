// What the store asks of this machine: the stored patches it applies, per
// target (build-id), in stacking order. A cumulative patch replaces every
// earlier patch of its target, so a target's list starts at its last
// cumulative patch; the earlier ones are superseded. A patch pinned to a tag
// the host does not take, or one the policy refuses, is not applied.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ops/patch_store.h"

namespace graft::ops {

enum class Standing { Applicable, Superseded, OtherTag, Refused };
std::string standing_name(Standing s);

struct DesiredPatch {
  StoredPatch stored;
  Patch patch;  // parsed; empty unless Applicable
  Standing standing = Standing::Applicable;
  std::string reason;  // why not Applicable
};

struct DesiredState {
  std::vector<DesiredPatch> patches;  // every stored patch, in store order
  std::vector<std::string> problems;  // store files that could not be read
  // Indexes into `patches` of the applicable ones, by target build-id.
  std::map<std::string, std::vector<size_t>> by_build_id;
  std::set<std::string> build_ids() const;
};

// `tags`: the roll-out tags this host takes (an untagged patch is for every
// host).
DesiredState load_desired_state(const PatchStore& store, const Policy& policy,
                                const std::vector<std::string>& tags);
// Marks the patches stored before a later cumulative patch of the same
// target superseded, and fills `by_build_id` with the applicable ones.
void index_applicable(DesiredState& state);

// A patch file given by hand (`graft status FILE`), as if it were the only
// stored patch.
DesiredState desired_state_of_file(const std::string& file, const Policy& policy);

}  // namespace graft::ops
