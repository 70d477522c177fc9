// Option blocks shared by several subcommands, declared once: a new
// subcommand (or a new kind of target, e.g. --kernel) adds its options with
// these and gets the same names, checks, defaults and help.
#pragma once
#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "cli/commands.h"

namespace graft::cli {

// --pid PID | --all, one of them required (checked by require_target()).
void add_process_selection(CLI::App* cmd, TargetArgs& t, const std::string& pid_help,
                           const std::string& all_help);
// --jobs N: with --all, how many processes are worked on at once.
void add_jobs(CLI::App* cmd, TargetArgs& t);
// Throws a usage error unless --pid or --all was given.
void require_target(const std::string& command, const TargetArgs& t);

// --model stop|hybrid|lazy, unset unless given. `shown_default': the
// default --help shows; nullopt for revert, where it is each patch's model.
void add_model_option(CLI::App* cmd, TargetArgs& t, const std::string& help,
                      std::optional<Model> shown_default);
// --force and --report-after, for the per-thread models.
void add_per_thread_options(CLI::App* cmd, TargetArgs& t, const std::string& force_help);
// --force needs a per-thread model (given, or `model` if none was given).
void check_force(const TargetArgs& t);

// --timeout SECONDS (> 0).
void add_timeout(CLI::App* cmd, double& seconds, const std::string& help);
// --json.
void add_json(CLI::App* cmd, bool& json, const std::string& help = "Machine-readable output (one JSON document on stdout)");
// --policy FILE.
void add_policy(CLI::App* cmd, std::string& policy, const std::string& help);

// A process id: a positive integer.
extern const CLI::Validator kProcessId;

}  // namespace graft::cli
