// The subcommands, one registration function each: it declares the
// subcommand's options (the shared blocks come from options.h) and returns
// what runs it. To add a subcommand: write add_NAME() and list it in
// run_command_line().
#include "cli/command_line.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/kernel_commands.h"
#include "cli/ops_commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/realtime_priority.h"

namespace graft::cli {

namespace {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
  const bool* json = nullptr;  // its --json flag, if it has one
  // Operations on live processes watch SIGINT/SIGTERM to roll back; the
  // stop model's run at real-time priority (realtime_priority.h).
  std::function<bool()> on_processes = [] { return false; };
  std::function<bool()> realtime = [] { return false; };
};

Command add_build(CLI::App& app) {
  auto b = std::make_shared<BuildArgs>();
  auto* cmd = app.add_subcommand("build", "Build a patch file from replacement functions or from a source diff");
  auto* from_source = cmd->add_option("--from-source", b->source, "C or C++ file with GRAFT_REPLACE declarations")
                          ->check(CLI::ExistingFile);
  auto* from_diff = cmd->add_option("--from-diff", b->diff, "Unified diff (FIX.patch) of the target's source tree")
                        ->check(CLI::ExistingFile);
  from_source->excludes(from_diff);
  cmd->add_option("--source", b->source_dir, "--from-diff: the original (unpatched) source tree")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--build", b->build_command, "--from-diff: build command run in the tree")->capture_default_str();
  cmd->add_option("--clean", b->clean_command,
                  "--from-diff: command that cleans the copied tree of an earlier build's outputs "
                  "(e.g. \"make distclean\"); not needed for a pristine or git tree");
  cmd->add_option("--keep-work", b->keep_work, "--from-diff: keep the work directory here (empty or new)");
  cmd->add_option("--debian-source", b->debian_source,
                  "--from-diff: instead of --source, the Debian source package the target was built "
                  "from: PKG[=VERSION] (apt-get source; the version defaults to the installed one) "
                  "or an unpacked source's folder; built as Debian builds it, cached");
  add_json(cmd, b->json);
  cmd->add_option("--target", b->target,
                  "Executable or shared library to patch (unstripped, or with its debug file installed)")
      ->check(CLI::ExistingFile);
  auto kernel = std::make_shared<KernelBuildArgs>();
  auto as_kernel = std::make_shared<bool>(false);
  cmd->add_flag("--kernel", *as_kernel, "Build a livepatch module (.ko) for the Linux kernel (docs/kernel.md)");
  cmd->add_option("--kernel-release", kernel->release, "--kernel: the target kernel's release (uname -r)");
  cmd->add_option("--config", kernel->config,
                  "--kernel --from-diff: the kernel's .config (default: that of the release's headers)")
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", b->output,
                  "Patch file to write (NAME.graft; --from-diff: default FIX.graft)");
  cmd->add_option("--name", b->name, "Patch name (default: the output file's base name)");
  cmd->add_flag("--replace", b->replace,
                "Cumulative patch: applying it replaces every earlier patch of the target "
                "(as GRAFT_CUMULATIVE in the source)");
  cmd->add_option("compiler-flags", b->compiler_flags, "Extra compiler flags, after --");
  return {cmd,
          [b, kernel, as_kernel] {
            if (*as_kernel) {
              if (!b->debian_source.empty())
                throw Error("--debian-source is for processes' binaries: build --kernel takes --source",
                            ErrorCode::usage);
              if (!b->target.empty())
                throw Error("build --kernel patches the kernel of --kernel-release: --target is for processes",
                            ErrorCode::usage);
              if (b->build_command != "make" || !b->clean_command.empty())
                throw Error("build --kernel --from-diff compiles the objects the diff touches with Kbuild: "
                            "no --build or --clean",
                            ErrorCode::usage);
              if (!b->diff.empty() && b->source_dir.empty())
                throw Error("build --kernel --from-diff needs --source DIR (the running kernel's source tree)",
                            ErrorCode::usage);
              if (!kernel->config.empty() && b->diff.empty())
                throw Error("--config is for build --kernel --from-diff", ErrorCode::usage);
              std::string config = kernel->config;
              *kernel = {b->source, b->output, b->name, kernel->release, b->keep_work, b->replace, b->json};
              kernel->diff = b->diff;
              kernel->source_dir = b->source_dir;
              kernel->config = config;
              return kernel_build(*kernel);
            }
            if (b->target.empty()) throw Error("build needs --target FILE (or --kernel)", ErrorCode::usage);
            if (b->diff.empty() == b->source.empty())
              throw Error("build needs --from-source FILE or --from-diff FIX.patch", ErrorCode::usage);
            if (!b->debian_source.empty()) {
              if (b->diff.empty())
                throw Error("--debian-source is for build --from-diff", ErrorCode::usage);
              if (!b->source_dir.empty() || b->build_command != "make" || !b->clean_command.empty() ||
                  !b->keep_work.empty())
                throw Error("build --debian-source builds the package as Debian does, in graft's "
                            "cache: no --source, --build, --clean or --keep-work",
                            ErrorCode::usage);
            } else if (!b->diff.empty() && b->source_dir.empty()) {
              throw Error("build --from-diff needs --source DIR (the original source tree) or "
                          "--debian-source PKG",
                          ErrorCode::usage);
            }
            if (!b->source.empty() && b->output.empty())
              throw Error("build --from-source needs -o NAME.graft", ErrorCode::usage);
            return b->diff.empty() ? build(*b) : build_from_diff(*b);
          },
          &b->json};
}

Command add_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Show what a patch file contains");
  cmd->add_option("patch", a->patch_file, "Patch file")->required();
  add_json(cmd, a->json);
  add_policy(cmd, a->policy, "Policy to judge the signature by (default: $GRAFT_POLICY or /etc/graft/policy)");
  return {cmd, [a] { return info(*a); }, &a->json};
}

Command add_keygen(CLI::App& app) {
  auto a = std::make_shared<KeygenArgs>();
  auto* cmd = app.add_subcommand("keygen", "Create an Ed25519 key pair for signing patches");
  cmd->add_option("-o,--output", a->prefix, "Writes PREFIX.key (secret, mode 0600) and PREFIX.pub")->required();
  cmd->add_option("--name", a->name, "Signer name shown with signed patches (default: PREFIX's base name)");
  add_json(cmd, a->json);
  return {cmd, [a] { return keygen(*a); }, &a->json};
}

Command add_sign(CLI::App& app) {
  auto a = std::make_shared<SignArgs>();
  auto* cmd = app.add_subcommand("sign", "Sign a patch file or a kernel livepatch module (replaces any earlier signature)");
  cmd->add_option("patch", a->patch_file, "Patch file, or kernel module (.ko) from graft build --kernel")->required()->check(CLI::ExistingFile);
  cmd->add_option("--key", a->key_file, "Secret key file (from graft keygen)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a->output, "Signed file to write (default: the patch file itself)");
  add_json(cmd, a->json);
  return {cmd, [a] { return sign(*a); }, &a->json};
}

// --kernel on apply and revert: the running kernel instead of processes. A
// kernel transition has no 10 s default: livepatch waits for every task.
struct KernelSwitch {
  std::shared_ptr<bool> flag = std::make_shared<bool>(false);
  bool given() const { return *flag; }
};
KernelSwitch add_kernel_switch(CLI::App* cmd, const std::string& help) {
  KernelSwitch k;
  cmd->add_flag("--kernel", *k.flag, help);
  return k;
}
KernelTransitionArgs kernel_args(const TargetArgs& t, const CLI::App* cmd) {
  if (t.pid || t.all)
    throw Error("--kernel patches the running kernel: no --pid or --all", ErrorCode::usage);
  if (cmd->get_option("--model")->count())
    throw Error("--kernel follows livepatch's own consistency model: no --model", ErrorCode::usage);
  return {cmd->get_option("--timeout")->count() ? t.timeout_s : 60, t.report_after_s, t.force, t.json,
          t.policy};
}

Command add_apply(CLI::App& app) {
  auto t = std::make_shared<TargetArgs>();
  auto file = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("apply", "Apply a patch to running processes");
  cmd->add_option("patch", *file, "Patch file")->required();
  add_process_selection(cmd, *t, "Process to patch", "Every process that maps the patch's target");
  add_jobs(cmd, *t);
  add_model_option(cmd, *t,
                   "Consistency model: stop (every thread stopped at once), hybrid (per-thread, "
                   "stack-checked) or lazy (per-thread, at system calls and graft_quiescent())",
                   kDefaultModel);
  add_per_thread_options(cmd, *t,
                         "Per-thread models: move every thread to the new code without checking its "
                         "stack (unsafe)");
  add_timeout(cmd, t->timeout_s, "Seconds to wait for threads to leave patched code");
  add_json(cmd, t->json);
  add_policy(cmd, t->policy, "Policy file (default: $GRAFT_POLICY or /etc/graft/policy)");
  KernelSwitch kernel = add_kernel_switch(cmd, "Load a livepatch module (.ko) into the running kernel");
  Command c{cmd,
            [t, file, kernel, cmd] {
              if (kernel.given()) return kernel_apply(*file, kernel_args(*t, cmd));
              require_target("apply", *t);
              check_force(*t);
              return cli::apply(*file, *t);
            },
            &t->json};
  c.on_processes = [kernel] { return !kernel.given(); };
  c.realtime = [t, kernel] { return !kernel.given() && !per_thread(t->model.value_or(kDefaultModel)); };
  return c;
}

Command add_revert(CLI::App& app) {
  auto t = std::make_shared<TargetArgs>();
  auto which = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("revert", "Revert an applied patch");
  cmd->add_option("patch-id", *which, "Patch id (or unique prefix) or name")->required();
  add_process_selection(cmd, *t, "Process", "Every process where the patch is applied");
  add_jobs(cmd, *t);
  add_model_option(cmd, *t,
                   "Consistency model: stop, hybrid or lazy (default: the model the patch was "
                   "applied with; a per-thread patch that cannot go back per thread is then "
                   "reverted with stop, and the output says why)",
                   std::nullopt);
  add_per_thread_options(cmd, *t,
                         "Per-thread models: move every thread back to the old code without checking "
                         "its stack (unsafe)");
  add_timeout(cmd, t->timeout_s, "Seconds to wait for threads to leave patch code");
  add_json(cmd, t->json);
  add_policy(cmd, t->policy, "Policy file, for its audit log (default: $GRAFT_POLICY or /etc/graft/policy)");
  KernelSwitch kernel = add_kernel_switch(cmd, "Revert the kernel livepatch NAME");
  Command c{cmd,
            [t, which, kernel, cmd] {
              if (kernel.given()) return kernel_revert(*which, kernel_args(*t, cmd));
              require_target("revert", *t);
              check_force(*t);
              return cli::revert(*which, *t);
            },
            &t->json};
  c.on_processes = [kernel] { return !kernel.given(); };
  // Without --model, each patch's own: raised on the tracing thread if stop.
  c.realtime = [t, kernel] { return !kernel.given() && t->model && !per_thread(*t->model); };
  return c;
}

Command add_list(CLI::App& app) {
  auto a = std::make_shared<ListArgs>();
  auto* cmd = app.add_subcommand("list", "List the patches applied in processes");
  cmd->add_option("--pid", a->pid, "Only this process")->check(kProcessId);
  add_json(cmd, a->json);
  KernelSwitch kernel = add_kernel_switch(cmd, "List the kernel's livepatches");
  return {cmd,
          [a, kernel] {
            if (kernel.given()) {
              if (a->pid) throw Error("--kernel lists the kernel's livepatches: no --pid", ErrorCode::usage);
              return kernel_list(a->json);
            }
            return list(*a);
          },
          &a->json};
}

Command add_recover(CLI::App& app) {
  auto t = std::make_shared<TargetArgs>();
  auto* cmd = app.add_subcommand(
      "recover", "Complete or roll back what an interrupted graft (killed midway) left in processes");
  add_process_selection(cmd, *t, "Process", "Every process that needs it");
  add_jobs(cmd, *t);
  add_timeout(cmd, t->timeout_s, "Seconds to wait for threads to leave patch code");
  add_json(cmd, t->json);
  Command c{cmd,
            [t] {
              require_target("recover", *t);
              return recover(*t);
            },
            &t->json};
  c.on_processes = [] { return true; };
  c.realtime = [] { return true; };
  return c;
}

// store, sync, status and daemon (ops_commands.h): one set of arguments
// for the four, one Command each for the names and --json.
std::vector<Command> add_ops(CLI::App& app) {
  auto ops = std::make_shared<OpsCommands>();
  add_ops_subcommands(app, *ops);
  std::vector<Command> out;
  for (CLI::App* cmd : {ops->store_add->get_parent(), ops->sync, ops->status, ops->daemon}) {
    out.push_back({cmd, [ops] { return run_ops_subcommand(*ops).value_or(kExitUsage); }, &ops->args.json});
    if (cmd == ops->sync || cmd == ops->daemon) out.back().on_processes = [] { return true; };
  }
  return out;
}

// Edit distance, for "did you mean".
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

bool asks_json(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) return false;
    if (std::strcmp(argv[i], "--json") == 0) return true;
  }
  return false;
}

}  // namespace

int run_command_line(int argc, char** argv) {
  CLI::App app{"graft: live patching for running Linux processes"};
  app.set_version_flag("--version", GRAFT_VERSION);
  app.require_subcommand(1);
  // Every subcommand, in --help's order; `ops' registers four at once.
  using Registration = std::function<std::vector<Command>(CLI::App&)>;
  auto one = [](Command (*add)(CLI::App&)) -> Registration {
    return [add](CLI::App& a) { return std::vector<Command>{add(a)}; };
  };
  const std::vector<std::pair<std::vector<std::string>, Registration>> registry = {
      {{"build"}, one(add_build)},   {{"info"}, one(add_info)},       {{"keygen"}, one(add_keygen)},
      {{"sign"}, one(add_sign)},     {{"apply"}, one(add_apply)},     {{"revert"}, one(add_revert)},
      {{"list"}, one(add_list)},     {{"recover"}, one(add_recover)},
      {{"store", "sync", "status", "daemon"}, add_ops}};

  std::string name = argc > 1 ? argv[1] : "";
  bool json = asks_json(argc, argv);
  // Only the invoked subcommand's options are declared (declaring them all
  // is a good part of graft's start-up, and --all runs are timed from
  // it); all of them for --help, --version or no subcommand.
  std::vector<Command> commands;
  for (const auto& [names, add] : registry)
    if (std::find(names.begin(), names.end(), name) != names.end())
      for (auto& c : add(app)) commands.push_back(std::move(c));
  if (commands.empty() && (name.empty() || name[0] == '-'))
    for (const auto& [names, add] : registry)
      for (auto& c : add(app)) commands.push_back(std::move(c));
  // An unknown subcommand (CLI11 would say "A subcommand is required").
  if (commands.empty()) {
    std::string closest;
    size_t best = SIZE_MAX;
    std::vector<std::string> all;
    for (const auto& [names, add] : registry)
      for (const auto& n : names) {
        all.push_back(n);
        if (size_t d = distance(name, n); d < best) best = d, closest = n;
      }
    std::string hint = best <= 2 ? fmt::format(" (did you mean `{}'?)", closest) : "";
    print_error(name, json,
                fmt::format("unknown command `{}'{}; the commands are {}", name, hint, fmt::join(all, ", ")),
                error_code_name(ErrorCode::usage));
    return kExitUsage;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0 || !json) return app.exit(e) == 0 ? 0 : kExitUsage;
    print_error(name, true, e.what(), error_code_name(ErrorCode::usage));
    return kExitUsage;
  }

  for (auto& c : commands) {
    if (!*c.app) continue;
    bool as_json = c.json && *c.json;
    std::optional<RealtimePriority> priority;
    try {
      if (c.on_processes()) watch_interrupts();
      if (c.realtime()) priority.emplace();
      int rc = c.run();
      // Interrupted, the operation rolled back (or finished) and said so.
      if (int sig = c.on_processes() ? interrupt_signal() : 0; sig && rc != 0) return 128 + sig;
      return rc;
    } catch (const std::exception& e) {
      ErrorCode code = error_code_of(e);
      print_error(c.app->get_name(), as_json, e.what(), error_code_name(code));
      return code == ErrorCode::no_such_process ? kExitFailed
             : code == ErrorCode::refused_by_policy ? kExitRefused
                                                    : kExitUsage;
    }
  }
  return kExitUsage;
}

}  // namespace graft::cli
