#include "ops/desired_state.h"

#include <algorithm>

namespace graft::ops {

std::string standing_name(Standing s) {
  switch (s) {
    case Standing::Applicable: return "applicable";
    case Standing::Superseded: return "superseded";
    case Standing::OtherTag: return "other-tag";
    case Standing::Refused: return "refused";
  }
  return "?";
}

std::set<std::string> DesiredState::build_ids() const {
  std::set<std::string> out;
  for (const auto& [id, _] : by_build_id) out.insert(id);
  return out;
}

void index_applicable(DesiredState& state) {
  // From the last applicable cumulative patch of each target on.
  std::map<std::string, size_t> last_cumulative;
  for (size_t i = 0; i < state.patches.size(); ++i) {
    const auto& d = state.patches[i];
    if (d.standing == Standing::Applicable && d.stored.cumulative) last_cumulative[d.stored.build_id] = i;
  }
  for (size_t i = 0; i < state.patches.size(); ++i) {
    auto& d = state.patches[i];
    if (d.standing != Standing::Applicable) continue;
    auto c = last_cumulative.find(d.stored.build_id);
    if (c != last_cumulative.end() && i < c->second) {
      d.standing = Standing::Superseded;
      d.reason = fmt::format("replaced by the cumulative patch {} ({}) stored after it",
                             state.patches[c->second].stored.name, state.patches[c->second].stored.id);
      continue;
    }
    state.by_build_id[d.stored.build_id].push_back(i);
  }
}

DesiredState load_desired_state(const PatchStore& store, const Policy& policy,
                                const std::vector<std::string>& tags) {
  DesiredState state;
  for (auto& s : store.list(&state.problems)) {
    DesiredPatch d;
    d.stored = s;
    if (!s.tag.empty() && std::find(tags.begin(), tags.end(), s.tag) == tags.end()) {
      d.standing = Standing::OtherTag;
      d.reason = fmt::format("pinned to tag `{}', which this host does not take", s.tag);
    } else {
      try {
        d.patch = store.load(s);
        if (auto why = refusal(policy, d.patch)) {
          d.standing = Standing::Refused;
          d.reason = "refused by policy: " + *why;
        }
      } catch (const Error& e) {
        d.standing = Standing::Refused;
        d.reason = e.what();
      }
    }
    state.patches.push_back(std::move(d));
  }
  index_applicable(state);
  return state;
}

DesiredState desired_state_of_file(const std::string& file, const Policy& policy) {
  DesiredState state;
  DesiredPatch d;
  d.patch = load_patch_file(file);
  d.stored.id = d.patch.id();
  d.stored.name = d.patch.name;
  d.stored.sha256 = d.patch.sha256;
  d.stored.file = file;
  d.stored.target_path = d.patch.target.path;
  d.stored.build_id = d.patch.target.build_id;
  d.stored.cumulative = d.patch.cumulative;
  d.stored.signer = signer_of(d.patch);
  if (auto why = refusal(policy, d.patch)) {
    d.standing = Standing::Refused;
    d.reason = "refused by policy: " + *why;
  }
  state.patches.push_back(std::move(d));
  index_applicable(state);
  return state;
}

}  // namespace graft::ops
