// `graft status --prometheus FILE`: node_exporter's textfile-collector
// format (gauges per stored patch, the last sync), written atomically so
// the collector never reads half a file.
#pragma once
#include <optional>
#include <string>

#include "ops/host_state.h"
#include "ops/patch_status.h"

namespace graft::ops {

std::string prometheus_text(const StatusReport& report, const std::optional<SyncRecord>& last_sync);
void write_prometheus_file(const std::string& path, const StatusReport& report,
                           const std::optional<SyncRecord>& last_sync);

}  // namespace graft::ops
