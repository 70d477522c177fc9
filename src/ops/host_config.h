// /etc/graft/graft.conf (or --config FILE): how sync, status and the daemon
// run on this host. A JSON object, every field optional, unknown fields an
// error (a typo must not silently change what the host does):
//
//   {"enable": true, "store": "/var/lib/graft/patches", "tags": ["canary"],
//    "rescan_interval": 30, "model": "stop",
//    "prometheus": "/var/lib/prometheus/node-exporter/graft.prom"}
//
// `graft.enable=0` on the kernel command line disables the daemon as
// `"enable": false` does (as kpatch.enable=0 does kpatch's service).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "consistency/model.h"

namespace graft::ops {

constexpr const char* kDefaultConfigPath = "/etc/graft/graft.conf";

struct HostConfig {
  std::string source;  // the file read, "" if none
  bool enable = true;
  std::string store;
  std::vector<std::string> tags;
  double rescan_interval_s = 30;
  std::optional<Model> model;  // nullopt: graft apply's default
  std::string prometheus;
};

// `path` "" reads /etc/graft/graft.conf if it exists; a named file must.
HostConfig load_host_config(const std::string& path);

// Whether the kernel command line (text of /proc/cmdline) says graft.enable=0.
bool disabled_on_command_line(const std::string& cmdline);

}  // namespace graft::ops
