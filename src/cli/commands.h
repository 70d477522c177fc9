// One function per `graft` subcommand; each returns the exit status. The
// command line (command_line.cc) fills the argument structs below and calls
// them; they print the result (text, or JSON with --json).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "consistency/model.h"

namespace graft::cli {

struct BuildArgs {
  std::string source, target, output, name;
  std::vector<std::string> compiler_flags;
  bool replace = false;  // cumulative patch (atomic replace)
  // --from-diff
  std::string diff, source_dir, build_command = "make", clean_command, keep_work, debian_source;
  bool json = false;
};
// The processes an operation works on, and how.
struct TargetArgs {
  int pid = 0;
  bool all = false;
  double timeout_s = 10;
  bool json = false;
  bool force = false;
  double report_after_s = 2;
  std::string policy;  // --policy FILE ("": $GRAFT_POLICY or /etc/graft/policy)
  // nullopt without --model: for apply, kDefaultModel, which gives way to
  // stop where only stop can patch; for revert, the model each patch was
  // applied with.
  std::optional<Model> model;
  unsigned jobs = 0;  // --all: processes worked on at once (0: loader/process_batch.h's default)
};
struct InfoArgs {
  std::string patch_file, policy;
  bool json = false;
};
struct KeygenArgs {
  std::string prefix, name;
  bool json = false;
};
struct SignArgs {
  std::string patch_file, key_file, output;
  bool json = false;
};
struct ListArgs {
  int pid = 0;
  bool json = false;
};

// Exit statuses (docs/cli.md).
constexpr int kExitFailed = 1;   // an operation failed in a process (no such process included)
constexpr int kExitUsage = 2;    // bad usage or input
constexpr int kExitRefused = 3;  // the policy refuses the patch

int build(const BuildArgs& args);
int build_from_diff(const BuildArgs& args);
int info(const InfoArgs& args);
int keygen(const KeygenArgs& args);
int sign(const SignArgs& args);
int apply(const std::string& patch_file, const TargetArgs& target);
int revert(const std::string& which, const TargetArgs& target);
int list(const ListArgs& args);
int recover(const TargetArgs& target);

// Prints an error as the command's output: a JSON document on stdout with
// --json ({"command", "ok": false, "error", "error_code", "results": []}),
// else "graft: error: ..." on stderr.
void print_error(const std::string& command, bool json, const std::string& message,
                 std::string_view error_code);

}  // namespace graft::cli
