#include "ops/host_state.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "ops/patch_store.h"
#include "ops/process_scan.h"

namespace graft::ops {

using json = nlohmann::json;

HostState::HostState(const std::string& store_dir) : dir_(store_dir + "/.state") {}

void HostState::load() {
  last_sync.reset();
  failures.clear();
  try {
    json s = json::parse(read_text_file(dir_ + "/last-sync.json", 1 << 20));
    SyncRecord r;
    r.time = s.at("time").get<int64_t>();
    r.ok = s.at("ok").get<bool>();
    r.applied = s.at("applied").get<size_t>();
    r.already = s.at("already_applied").get<size_t>();
    r.failed = s.at("failed").get<size_t>();
    r.by = s.value("by", "");
    last_sync = r;
  } catch (const std::exception&) {
  }
  try {
    json f = json::parse(read_text_file(dir_ + "/failures.json", 16 << 20));
    for (const auto& e : f.at("failures"))
      failures[{e.at("pid").get<pid_t>(), e.at("start_time").get<uint64_t>(),
                e.at("patch_id").get<std::string>()}] = e.at("reason").get<std::string>();
  } catch (const std::exception&) {
  }
}

void HostState::save() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) fail("cannot create {}: {}", dir_, ec.message());
  if (last_sync)
    write_file_atomically(dir_ + "/last-sync.json",
                          json{{"time", last_sync->time},
                               {"ok", last_sync->ok},
                               {"applied", last_sync->applied},
                               {"already_applied", last_sync->already},
                               {"failed", last_sync->failed},
                               {"by", last_sync->by}}
                                  .dump() + "\n");
  json list = json::array();
  for (auto it = failures.begin(); it != failures.end();) {
    if (process_start_time(it->first.pid) != it->first.start_time) {
      it = failures.erase(it);
      continue;
    }
    list.push_back({{"pid", it->first.pid}, {"start_time", it->first.start_time},
                    {"patch_id", it->first.patch_id}, {"reason", it->second}});
    ++it;
  }
  write_file_atomically(dir_ + "/failures.json", json{{"failures", list}}.dump() + "\n");
}

const std::string* HostState::failure(pid_t pid, uint64_t start_time, const std::string& patch_id) const {
  auto it = failures.find({pid, start_time, patch_id});
  return it == failures.end() ? nullptr : &it->second;
}

}  // namespace graft::ops
