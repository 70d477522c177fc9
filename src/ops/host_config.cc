#include "ops/host_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/file.h"

namespace graft::ops {

using json = nlohmann::json;

HostConfig load_host_config(const std::string& path) {
  HostConfig c;
  std::string file = path.empty() ? kDefaultConfigPath : path;
  struct stat st;
  if (stat(file.c_str(), &st) != 0) {
    if (path.empty()) return c;
    fail("cannot read the configuration {}: {}", file, errno_text(errno));
  }
  // Like the policy: it decides what graft does to every process here.
  if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022))
    fail("{}: the configuration must belong to root (or you) and be writable by no one else", file);
  json j;
  try {
    j = json::parse(read_text_file(file, 1 << 20));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file, e.what());
  }
  if (!j.is_object()) fail("{}: must be a JSON object", file);
  try {
    for (const auto& [key, v] : j.items()) {
      if (key == "enable") c.enable = v.get<bool>();
      else if (key == "store") c.store = v.get<std::string>();
      else if (key == "tags") c.tags = v.get<std::vector<std::string>>();
      else if (key == "rescan_interval") c.rescan_interval_s = v.get<double>();
      else if (key == "model") {
        std::string name = v.get<std::string>();
        auto m = parse_model(name);
        if (!m) fail("{}: model must be stop, hybrid or lazy, not `{}'", file, name);
        c.model = *m;
      }
      else if (key == "prometheus") c.prometheus = v.get<std::string>();
      else fail("{}: unknown setting `{}'", file, key);
    }
  } catch (const json::exception& e) {
    fail("{}: a setting has the wrong type: {}", file, e.what());
  }
  if (!(c.rescan_interval_s > 0)) fail("{}: rescan_interval must be positive", file);
  c.source = file;
  return c;
}

bool disabled_on_command_line(const std::string& cmdline) {
  std::istringstream in(cmdline);
  std::string word;
  bool disabled = false;
  while (in >> word) {
    if (word == "graft.enable=0" || word == "graft.enable=off" || word == "graft.enable=n") disabled = true;
    else if (word.rfind("graft.enable=", 0) == 0) disabled = false;  // the last one wins
  }
  return disabled;
}

}  // namespace graft::ops
