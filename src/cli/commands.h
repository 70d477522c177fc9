// One function per `graft` subcommand; each returns the exit status.
#pragma once
#include <string>
#include <vector>

namespace graft::cli {

struct BuildArgs {
  std::string source, target, output, name;
  std::vector<std::string> compiler_flags;
  bool replace = false;  // cumulative patch (atomic replace)
  // --from-diff
  std::string diff, source_dir, build_command = "make", clean_command, keep_work;
  bool json = false;
};
struct TargetArgs {
  int pid = 0;
  bool all = false;
  double timeout_s = 10;
  bool json = false;
  bool force = false;
  double report_after_s = 2;
  std::string policy;  // --policy FILE ("": $GRAFT_POLICY or /etc/graft/policy)
};

// Exit status of a patch the policy refuses (docs/cli.md).
constexpr int kExitRefused = 3;

int build(const BuildArgs& args);
int build_from_diff(const BuildArgs& args);
int info(const std::string& patch_file, bool json, const std::string& policy);
int keygen(const std::string& prefix, const std::string& name);
int sign(const std::string& patch_file, const std::string& key_file, const std::string& output);
int apply(const std::string& patch_file, const TargetArgs& target, const std::string& model);
// `model' "": the one each patch was applied with.
int revert(const std::string& which, const TargetArgs& target, const std::string& model);
int list(int pid, bool json);
int recover(const TargetArgs& target);

}  // namespace graft::cli
