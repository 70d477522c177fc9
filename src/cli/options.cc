#include "cli/options.h"

#include <fmt/format.h>

#include <cstdlib>
#include <map>

#include "common/error.h"

namespace graft::cli {

namespace {

// "12" -> 12; nullopt for anything but a plain decimal number.
std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != 0 || v != v) return std::nullopt;
  return v;
}

CLI::Validator seconds_validator(bool zero_allowed) {
  return CLI::Validator(
      [zero_allowed](std::string& s) -> std::string {
        auto v = number(s);
        if (!v || *v < 0 || (!zero_allowed && *v == 0) || *v > 86400 * 365)
          return fmt::format("must be a number of seconds {} 0, not `{}'", zero_allowed ? "of at least" : "above", s);
        return "";
      },
      "SECONDS");
}

}  // namespace

const CLI::Validator kProcessId(
    [](std::string& s) -> std::string {
      char* end = nullptr;
      long v = std::strtol(s.c_str(), &end, 10);
      if (s.empty() || *end != 0 || v <= 0 || v > 0x3fffffff)
        return fmt::format("must be a process id (a positive integer), not `{}'", s);
      return "";
    },
    "PID");

void add_process_selection(CLI::App* cmd, TargetArgs& t, const std::string& pid_help,
                           const std::string& all_help) {
  auto* pid = cmd->add_option("--pid", t.pid, pid_help)->check(kProcessId);
  auto* all = cmd->add_flag("--all", t.all, all_help);
  pid->excludes(all);
}

void add_jobs(CLI::App* cmd, TargetArgs& t) {
  cmd->add_option("--jobs", t.jobs,
                  "With --all: processes worked on at once (default: twice the CPUs graft may use)")
      ->check(CLI::Range(1, 1024));
}

void require_target(const std::string& command, const TargetArgs& t) {
  if (!t.pid && !t.all) throw Error(command + " needs --pid PID or --all", ErrorCode::usage);
}

void add_model_option(CLI::App* cmd, TargetArgs& t, const std::string& help,
                      std::optional<Model> shown_default) {
  // Left unset without --model: the loader then knows the default was
  // not chosen, and may give way to the stop model where it must.
  t.model.reset();
  auto* o = cmd->add_option_function<std::string>(
      "--model",
      [&t](const std::string& name) {
        // Checked by the validator below.
        t.model = *parse_model(name);
      },
      help);
  o->check(CLI::Validator(
      [](std::string& s) -> std::string {
        return parse_model(s) ? "" : fmt::format("unknown model `{}' (stop, hybrid or lazy)", s);
      },
      "stop|hybrid|lazy"));
  if (shown_default) o->default_str(std::string(model_name(*shown_default)));
}

void add_per_thread_options(CLI::App* cmd, TargetArgs& t, const std::string& force_help) {
  cmd->add_flag("--force", t.force, force_help);
  cmd->add_option("--report-after", t.report_after_s,
                  "Per-thread models: seconds after which the threads still pending are reported")
      ->check(seconds_validator(true))
      ->capture_default_str();
}

void check_force(const TargetArgs& t) {
  if (t.force && t.model && !per_thread(*t.model))
    throw Error("--force needs --model hybrid or lazy", ErrorCode::usage);
}

void add_timeout(CLI::App* cmd, double& seconds, const std::string& help) {
  cmd->add_option("--timeout", seconds, help)->check(seconds_validator(false))->capture_default_str();
}

void add_json(CLI::App* cmd, bool& json, const std::string& help) { cmd->add_flag("--json", json, help); }

void add_policy(CLI::App* cmd, std::string& policy, const std::string& help) {
  cmd->add_option("--policy", policy, help);
}

}  // namespace graft::cli
