// The consistency model: how graft moves a process's threads from the old
// code to the new (docs/architecture.md). Parsed once, at the boundary
// (the command line, a record read from a process); everything behind it
// switches on the enum.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace graft {

enum class Model {
  stop,    // every thread stopped at once, the entries written together
  hybrid,  // per thread, moved by stack checks
  lazy,    // per thread, at system calls and graft_quiescent()
};

// What `graft apply` uses without --model.
inline constexpr Model kDefaultModel = Model::hybrid;

inline constexpr std::pair<std::string_view, Model> kModelNames[] = {
    {"stop", Model::stop}, {"hybrid", Model::hybrid}, {"lazy", Model::lazy}};

inline std::string_view model_name(Model m) {
  for (const auto& [name, model] : kModelNames)
    if (model == m) return name;
  return "?";
}

inline std::optional<Model> parse_model(std::string_view name) {
  for (const auto& [n, model] : kModelNames)
    if (n == name) return model;
  return std::nullopt;
}

// Whether threads move one at a time (through gates), not in one stop.
inline bool per_thread(Model m) { return m != Model::stop; }

}  // namespace graft

template <>
struct fmt::formatter<graft::Model> : fmt::formatter<std::string_view> {
  auto format(graft::Model m, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(graft::model_name(m), ctx);
  }
};
