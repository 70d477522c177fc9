#include "ops/patch_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "elf/elf_file.h"
#include "loader/operations.h"

namespace graft::ops {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

StoredPatch describe(const Patch& p) {
  StoredPatch s;
  s.id = p.id();
  s.name = p.name;
  s.sha256 = p.sha256;
  s.target_path = p.target.path;
  s.build_id = p.target.build_id;
  s.cumulative = p.cumulative;
  s.signer = signer_of(p);
  return s;
}

bool matches(const StoredPatch& p, const std::string& which) {
  return p.name == which || (which.size() >= 4 && p.sha256.rfind(which, 0) == 0);
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& data) {
  std::string tmp = fmt::format("{}.tmp.{}", path, getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot write {}: {}", tmp, errno_text(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      fail("cannot write {}: {}", tmp, errno_text(err));
    }
    done += static_cast<size_t>(n);
  }
  fchmod(fd, 0644);  // whatever the umask: readers are not only root
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(tmp.c_str());
    fail("cannot write {}: {}", tmp, errno_text(errno));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp, path, errno_text(err));
  }
}

std::optional<std::string> installed_target(const Patch& patch) {
  try {
    if (!patch.target.path.empty() && read_build_id(patch.target.path) == patch.target.build_id)
      return patch.target.path;
  } catch (const Error&) {
  }
  auto pids = processes_mapping(patch.target.build_id);
  if (!pids.empty()) return fmt::format("mapped by process {}", pids.front());
  return std::nullopt;
}

PatchStore::PatchStore(std::string dir) : dir_(std::move(dir)) {}

std::vector<StoredPatch> PatchStore::list(std::vector<std::string>* problems) const {
  std::vector<StoredPatch> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".graft") continue;
    try {
      Patch p = load_patch_file(e.path().string());
      StoredPatch s = describe(p);
      s.file = e.path().string();
      fs::path meta = e.path();
      meta.replace_extension(".json");
      if (fs::exists(meta)) {
        json m = json::parse(read_text_file(meta.string(), 1 << 20));
        if (!m.is_object()) fail("{}: not a JSON object", meta.string());
        s.tag = m.value("tag", "");
        s.seq = m.value("seq", uint64_t(0));
        s.added_at = m.value("added_at", int64_t(0));
        s.source = m.value("source", "");
      }
      out.push_back(std::move(s));
    } catch (const std::exception& ex) {
      if (problems) problems->push_back(fmt::format("{}: {}", e.path().string(), ex.what()));
    }
  }
  std::sort(out.begin(), out.end(), [](const StoredPatch& a, const StoredPatch& b) {
    return a.seq != b.seq ? a.seq < b.seq : a.id < b.id;
  });
  return out;
}

void PatchStore::write_meta(const StoredPatch& p) const {
  json m = {{"name", p.name}, {"id", p.id},           {"tag", p.tag},
            {"seq", p.seq},   {"added_at", p.added_at}, {"source", p.source}};
  write_file_atomically(fmt::format("{}/{}.json", dir_, p.id), m.dump() + "\n");
}

AddResult PatchStore::add(const std::string& file, const std::string& tag, const Policy& policy) {
  Patch patch;
  try {
    patch = load_patch_file(file);
  } catch (const Error& e) {
    throw StoreRefusal(StoreRefusal::Kind::Damaged, e.what());
  }
  if (auto why = refusal(policy, patch)) throw StoreRefusal(StoreRefusal::Kind::Policy, *why);
  if (!installed_target(patch))
    throw StoreRefusal(StoreRefusal::Kind::NoTarget,
                       fmt::format("{}: its target {} (build-id {}) is not installed here: no such "
                                   "file with that build-id, and no process maps it",
                                   file, patch.target.path, patch.target.build_id));
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) fail("cannot create the patch store {}: {}", dir_, ec.message());
  auto stored = list();
  for (auto& s : stored)
    if (s.sha256 == patch.sha256) {
      if (s.tag == tag) return {s, false};
      s.tag = tag;
      write_meta(s);
      return {s, true};
    }
  StoredPatch s = describe(patch);
  s.tag = tag;
  s.seq = stored.empty() ? 1 : stored.back().seq + 1;
  s.added_at = std::time(nullptr);
  s.source = fs::path(file).filename().string();
  s.file = fmt::format("{}/{}.graft", dir_, s.id);
  Bytes bytes = read_file(file);
  // The metadata first: a patch file is what makes an entry, and it must
  // never be there without its place in the order.
  write_meta(s);
  write_file_atomically(s.file, std::string(bytes.begin(), bytes.end()));
  return {s, true};
}

StoredPatch PatchStore::find(const std::string& which) const {
  std::vector<StoredPatch> found;
  for (auto& s : list())
    if (matches(s, which)) found.push_back(s);
  if (found.empty()) fail("no patch `{}' in the store {}", which, dir_);
  if (found.size() > 1)
    fail("`{}' names {} patches in the store {}: give the id", which, found.size(), dir_);
  return found.front();
}

StoredPatch PatchStore::remove(const std::string& which) {
  StoredPatch s = find(which);
  if (unlink(s.file.c_str()) != 0) fail("cannot remove {}: {}", s.file, errno_text(errno));
  unlink(fmt::format("{}/{}.json", dir_, s.id).c_str());
  return s;
}

AddResult PatchStore::set_tag(const std::string& which, const std::string& tag) {
  StoredPatch s = find(which);
  if (s.tag == tag) return {s, false};
  s.tag = tag;
  write_meta(s);
  return {s, true};
}

Patch PatchStore::load(const StoredPatch& p) const { return load_patch_file(p.file); }

}  // namespace graft::ops
