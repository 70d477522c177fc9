#include <CLI/CLI.hpp>

#include <sys/auxv.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>

#include "builder/compile_log.h"
#include "cli/commands.h"
#include "cli/kernel_commands.h"
#include "cli/ops_commands.h"
#include "common/error.h"
#include "common/realtime_priority.h"

// graft runs with exactly the caller's rights: ptrace and /proc/PID/mem
// then let it change only processes the caller could debug anyway. A
// setuid or setgid graft (or one with file capabilities) would let anyone
// patch processes they cannot trace: refuse to run at all.
bool privileged_by_installation() {
  return getauxval(AT_SECURE) != 0 || getuid() != geteuid() || getgid() != getegid();
}

int main(int argc, char** argv) {
  using namespace graft::cli;
  if (privileged_by_installation()) {
    std::fprintf(stderr,
                 "graft: error: graft must not be installed setuid, setgid or with file "
                 "capabilities (uid %u, euid %u, gid %u, egid %u); run it as the user who may "
                 "trace the process\n",
                 getuid(), geteuid(), getgid(), getegid());
    return 2;
  }
  // Invoked as graft-cc / graft-c++ by a build that graft runs (--from-diff).
  if (int rc = graft::maybe_run_compiler_wrapper(argc, argv); rc >= 0) return rc;
  // Operations on live processes run at real-time priority from the start
  // (see realtime_priority.h); building a patch does not.
  std::optional<graft::RealtimePriority> priority;
  if (argc > 1 && (std::string(argv[1]) == "apply" || std::string(argv[1]) == "revert" ||
                   std::string(argv[1]) == "recover"))
    priority.emplace();
  CLI::App app{"graft: live patching for running Linux processes"};
  app.set_version_flag("--version", GRAFT_VERSION);
  app.require_subcommand(1);

  BuildArgs b;
  auto* build_cmd = app.add_subcommand("build", "Build a patch file from replacement functions or from a source diff");
  auto* from_source = build_cmd->add_option("--from-source", b.source, "C or C++ file with GRAFT_REPLACE declarations")
      ->check(CLI::ExistingFile);
  auto* from_diff = build_cmd->add_option("--from-diff", b.diff, "Unified diff (FIX.patch) of the target's source tree")
      ->check(CLI::ExistingFile);
  from_source->excludes(from_diff);
  build_cmd->add_option("--source", b.source_dir, "--from-diff: the original (unpatched) source tree")
      ->check(CLI::ExistingDirectory);
  build_cmd->add_option("--build", b.build_command, "--from-diff: build command run in the tree (default: make)");
  build_cmd->add_option("--clean", b.clean_command,
                        "--from-diff: command that cleans the copied tree of an earlier build's "
                        "outputs (e.g. \"make distclean\"); not needed for a pristine or git tree");
  build_cmd->add_option("--keep-work", b.keep_work, "--from-diff: keep the work directory here (empty or new)");
  build_cmd->add_flag("--json", b.json, "--from-diff: machine-readable output");
  build_cmd->add_option("--target", b.target, "Executable or shared library to patch (unstripped)")
      ->check(CLI::ExistingFile);
  bool build_kernel = false;
  std::string kernel_release;
  build_cmd->add_flag("--kernel", build_kernel, "Build a livepatch module (.ko) for the Linux kernel (docs/kernel.md)");
  build_cmd->add_option("--kernel-release", kernel_release, "--kernel: the target kernel's release (uname -r)");
  build_cmd->add_option("-o,--output", b.output, "Patch file to write (NAME.graft)");
  build_cmd->add_option("--name", b.name, "Patch name (default: the output file's base name)");
  build_cmd->add_flag("--replace", b.replace,
                      "Cumulative patch: applying it replaces every earlier patch of the target "
                      "(as GRAFT_CUMULATIVE in the source)");
  build_cmd->add_option("compiler-flags", b.compiler_flags, "Extra compiler flags, after --");

  std::string info_file;
  bool info_json = false;
  auto* info_cmd = app.add_subcommand("info", "Show what a patch file contains");
  info_cmd->add_option("patch", info_file, "Patch file")->required();
  info_cmd->add_flag("--json", info_json, "Machine-readable output");
  std::string info_policy;
  info_cmd->add_option("--policy", info_policy, "Policy to judge the signature by (default: $GRAFT_POLICY or /etc/graft/policy)");

  std::string key_prefix, key_name;
  auto* keygen_cmd = app.add_subcommand("keygen", "Create an Ed25519 key pair for signing patches");
  keygen_cmd->add_option("-o,--output", key_prefix, "Writes PREFIX.key (secret, mode 0600) and PREFIX.pub")
      ->required();
  keygen_cmd->add_option("--name", key_name, "Signer name shown with signed patches (default: PREFIX's base name)");

  std::string sign_file, sign_key, sign_output;
  auto* sign_cmd = app.add_subcommand("sign", "Sign a patch file (replaces any earlier signature)");
  sign_cmd->add_option("patch", sign_file, "Patch file")->required()->check(CLI::ExistingFile);
  sign_cmd->add_option("--key", sign_key, "Secret key file (from graft keygen)")->required()->check(CLI::ExistingFile);
  sign_cmd->add_option("-o,--output", sign_output, "Signed file to write (default: the patch file itself)");

  std::string apply_file, model = "stop";
  TargetArgs at;
  auto* apply_cmd = app.add_subcommand("apply", "Apply a patch to running processes");
  apply_cmd->add_option("patch", apply_file, "Patch file")->required();
  auto* apid = apply_cmd->add_option("--pid", at.pid, "Process to patch");
  auto* aall = apply_cmd->add_flag("--all", at.all, "Every process that maps the patch's target");
  apid->excludes(aall);
  apply_cmd->add_option("--model", model,
                        "Consistency model: stop (every thread stopped at once, the default), "
                        "hybrid (per-thread, stack-checked) or lazy (per-thread, at system calls "
                        "and graft_quiescent())")
      ->check(CLI::IsMember({"stop", "hybrid", "lazy"}));
  apply_cmd->add_flag("--force", at.force,
                      "Per-thread models: move every thread to the new code without checking its "
                      "stack (unsafe)");
  apply_cmd->add_option("--report-after", at.report_after_s,
                        "Per-thread models: seconds after which the threads still pending are "
                        "reported (2)")
      ->check(CLI::NonNegativeNumber);
  apply_cmd->add_option("--timeout", at.timeout_s, "Seconds to wait for threads to leave patched code")
      ->check(CLI::PositiveNumber);
  apply_cmd->add_flag("--json", at.json, "Machine-readable output");
  apply_cmd->add_option("--policy", at.policy, "Policy file (default: $GRAFT_POLICY or /etc/graft/policy)");
  bool apply_kernel = false;
  apply_cmd->add_flag("--kernel", apply_kernel, "Load a livepatch module (.ko) into the running kernel");

  std::string which;
  TargetArgs rt;
  auto* revert_cmd = app.add_subcommand("revert", "Revert an applied patch");
  revert_cmd->add_option("patch-id", which, "Patch id (or unique prefix) or name")->required();
  auto* rpid = revert_cmd->add_option("--pid", rt.pid, "Process");
  auto* rall = revert_cmd->add_flag("--all", rt.all, "Every process where the patch is applied");
  rpid->excludes(rall);
  std::string revert_model;
  revert_cmd->add_option("--model", revert_model,
                         "Consistency model: stop, hybrid or lazy (default: the model the patch was "
                         "applied with; a per-thread patch that cannot go back per thread is then "
                         "reverted with stop, and the output says why)")
      ->check(CLI::IsMember({"stop", "hybrid", "lazy"}));
  revert_cmd->add_flag("--force", rt.force,
                       "Per-thread models: move every thread back to the old code without checking "
                       "its stack (unsafe)");
  revert_cmd->add_option("--report-after", rt.report_after_s,
                         "Per-thread models: seconds after which the threads still pending are "
                         "reported (2)")
      ->check(CLI::NonNegativeNumber);
  revert_cmd->add_option("--timeout", rt.timeout_s, "Seconds to wait for threads to leave patch code")
      ->check(CLI::PositiveNumber);
  revert_cmd->add_flag("--json", rt.json, "Machine-readable output");
  bool revert_kernel = false;
  revert_cmd->add_flag("--kernel", revert_kernel, "Revert the kernel livepatch NAME");
  revert_cmd->add_option("--policy", rt.policy, "Policy file, for its audit log (default: $GRAFT_POLICY or /etc/graft/policy)");

  int list_pid = 0;
  bool list_json = false;
  auto* list_cmd = app.add_subcommand("list", "List the patches applied in processes");
  list_cmd->add_option("--pid", list_pid, "Only this process");
  list_cmd->add_flag("--json", list_json, "Machine-readable output");
  bool list_kernel = false;
  list_cmd->add_flag("--kernel", list_kernel, "List the kernel's livepatches");

  TargetArgs ct;
  auto* recover_cmd = app.add_subcommand(
      "recover", "Complete or roll back what an interrupted graft (killed midway) left in processes");
  auto* cpid = recover_cmd->add_option("--pid", ct.pid, "Process");
  auto* call = recover_cmd->add_flag("--all", ct.all, "Every process that needs it");
  cpid->excludes(call);
  recover_cmd->add_option("--timeout", ct.timeout_s, "Seconds to wait for threads to leave patch code")
      ->check(CLI::PositiveNumber);
  recover_cmd->add_flag("--json", ct.json, "Machine-readable output");

  OpsCommands ops;
  add_ops_subcommands(app, ops);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    // A kernel transition has no 10 s default: livepatch waits for every task.
    auto kernel_args = [](const TargetArgs& t, const CLI::App* cmd) {
      return KernelTransitionArgs{cmd->get_option("--timeout")->count() ? t.timeout_s : 60, t.report_after_s,
                                  t.force, t.json, t.policy};
    };
    if (*build_cmd && build_kernel) {
      if (!b.diff.empty() || !b.target.empty())
        throw graft::Error("build --kernel takes --from-source and --kernel-release (--from-diff is not "
                           "supported for the kernel yet; --target is for processes)");
      return kernel_build({b.source, b.output, b.name, kernel_release, b.keep_work, b.replace, b.json});
    }
    if ((apply_kernel && (at.pid || at.all)) || (revert_kernel && (rt.pid || rt.all)))
      throw graft::Error("--kernel patches the running kernel: no --pid or --all");
    if (*apply_cmd && apply_kernel) return kernel_apply(apply_file, kernel_args(at, apply_cmd));
    if (*revert_cmd && revert_kernel) return kernel_revert(which, kernel_args(rt, revert_cmd));
    if (*list_cmd && list_kernel) return kernel_list(list_json);
    if (*build_cmd) {
      if (b.target.empty()) throw graft::Error("build needs --target FILE (or --kernel)");
      if (b.diff.empty() == b.source.empty())
        throw graft::Error("build needs --from-source FILE or --from-diff FIX.patch");
      if (!b.diff.empty() && b.source_dir.empty())
        throw graft::Error("build --from-diff needs --source DIR (the original source tree)");
      if (!b.source.empty() && b.output.empty()) throw graft::Error("build --from-source needs -o NAME.graft");
      return b.diff.empty() ? build(b) : build_from_diff(b);
    }
    if (*info_cmd) return info(info_file, info_json, info_policy);
    if (*keygen_cmd) return keygen(key_prefix, key_name);
    if (*sign_cmd) return sign(sign_file, sign_key, sign_output);
    if (*apply_cmd) {
      if (!at.pid && !at.all) throw graft::Error("apply needs --pid PID or --all");
      if (at.force && model == "stop") throw graft::Error("--force needs --model hybrid or lazy");
      return apply(apply_file, at, model);
    }
    if (*revert_cmd) {
      if (!rt.pid && !rt.all) throw graft::Error("revert needs --pid PID or --all");
      if (rt.force && revert_model == "stop") throw graft::Error("--force needs --model hybrid or lazy");
      return revert(which, rt, revert_model);
    }
    if (*list_cmd) return list(list_pid, list_json);
    if (auto rc = run_ops_subcommand(ops)) return *rc;
    if (*recover_cmd) {
      if (!ct.pid && !ct.all) throw graft::Error("recover needs --pid PID or --all");
      return recover(ct);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft: error: %s\n", e.what());
    return 2;
  }
  return 2;
}
