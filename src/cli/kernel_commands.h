// The --kernel forms of graft build, apply, revert and list
// (docs/kernel.md); each returns the exit status.
#pragma once
#include <string>

namespace graft::cli {

struct KernelBuildArgs {
  std::string source;   // --from-source FILE.c
  std::string output;   // -o NAME.ko
  std::string name;     // --name
  std::string release;  // --kernel-release
  std::string keep_work;
  bool replace = false;
  bool json = false;
  std::string diff;        // --from-diff FIX.patch
  std::string source_dir;  // --source DIR (with --from-diff)
  std::string config;      // --config (with --from-diff)
};

struct KernelTransitionArgs {
  double timeout_s = 60;
  double report_after_s = 2;
  bool force = false;
  bool json = false;
  std::string policy;  // --policy FILE ("": $GRAFT_POLICY or /etc/graft/policy)
};

// Exit status when a transition timed out and was reversed.
constexpr int kExitTransitionReversed = 1;

int kernel_build(const KernelBuildArgs& args);
int kernel_apply(const std::string& module, const KernelTransitionArgs& args);
int kernel_revert(const std::string& name, const KernelTransitionArgs& args);
int kernel_list(bool json);

}  // namespace graft::cli
