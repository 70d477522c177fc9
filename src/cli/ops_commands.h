// The subcommands that run graft on a host over time: `store`, `sync`,
// `status`, `daemon` (docs/operations.md). main.cc registers them with
// add_ops_subcommands() and runs the one given with run_ops_subcommand().
#pragma once
#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "consistency/model.h"

namespace graft::cli {

struct OpsArgs {
  std::string store;   // --store ("": $GRAFT_STORE or /var/lib/graft/patches)
  std::string policy;  // --policy
  std::string config;  // --config (daemon; sync and status read its tags and store)
  std::vector<std::string> tags;  // --tag: the roll-out tags this host takes
  bool json = false;
  // store
  std::string file, which, tag;
  // sync, daemon
  std::optional<Model> model;  // nullopt: the config's (stop by default)
  double timeout_s = 10;
  unsigned jobs = 0;  // sync: processes at once (0: loader/process_batch.h's default)
  // status
  std::string prometheus;
  // daemon
  double rescan_s = 30;
  bool poll = false;  // the /proc polling fallback even where the connector works
  std::string kernel_cmdline = "/proc/cmdline";
};

struct OpsCommands {
  OpsArgs args;
  CLI::App *store_add = nullptr, *store_remove = nullptr, *store_list = nullptr,
           *store_tag = nullptr, *sync = nullptr, *status = nullptr, *daemon = nullptr;
};

void add_ops_subcommands(CLI::App& app, OpsCommands& ops);
// The exit status of the ops subcommand given, nullopt if none was.
std::optional<int> run_ops_subcommand(OpsCommands& ops);

int store_add(const OpsArgs& a);
int store_remove(const OpsArgs& a);
int store_list(const OpsArgs& a);
int store_tag(const OpsArgs& a);
int sync(const OpsArgs& a);
int status(const OpsArgs& a);
int daemon(const OpsArgs& a);

}  // namespace graft::cli
