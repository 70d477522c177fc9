// src/ops: the pure parts of the host-level commands (which stored patches
// apply, the host configuration, the kernel command line switch, the
// Prometheus text). The rest runs against real processes in tests/e2e/ops_*.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "ops/desired_state.h"
#include "ops/host_config.h"
#include "ops/prometheus.h"

namespace graft::ops {
namespace {

DesiredPatch stored(const std::string& name, const std::string& build_id, bool cumulative,
                    Standing standing = Standing::Applicable) {
  DesiredPatch d;
  d.stored.name = name;
  d.stored.id = name + "-id";
  d.stored.build_id = build_id;
  d.stored.cumulative = cumulative;
  d.standing = standing;
  return d;
}

TEST(DesiredState, CumulativePatchSupersedesEarlierOnesOfItsTargetOnly) {
  DesiredState s;
  s.patches = {stored("a", "T", false), stored("b", "U", false), stored("c", "T", true),
               stored("d", "T", false), stored("e", "T", true, Standing::OtherTag)};
  index_applicable(s);
  EXPECT_EQ(s.patches[0].standing, Standing::Superseded);
  EXPECT_NE(s.patches[0].reason.find("c (c-id)"), std::string::npos);
  EXPECT_EQ(s.patches[1].standing, Standing::Applicable);
  EXPECT_EQ(s.patches[2].standing, Standing::Applicable);
  EXPECT_EQ(s.patches[3].standing, Standing::Applicable);
  // A cumulative patch this host does not take supersedes nothing.
  EXPECT_EQ(s.patches[4].standing, Standing::OtherTag);
  EXPECT_EQ(s.by_build_id["T"], (std::vector<size_t>{2, 3}));
  EXPECT_EQ(s.by_build_id["U"], (std::vector<size_t>{1}));
  EXPECT_EQ(s.build_ids(), (std::set<std::string>{"T", "U"}));
}

TEST(HostConfig, KernelCommandLineSwitch) {
  EXPECT_FALSE(disabled_on_command_line("BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet\n"));
  EXPECT_TRUE(disabled_on_command_line("quiet graft.enable=0\n"));
  EXPECT_TRUE(disabled_on_command_line("graft.enable=off"));
  EXPECT_FALSE(disabled_on_command_line("graft.enable=0 graft.enable=1"));  // the last one wins
  EXPECT_FALSE(disabled_on_command_line("xgraft.enable=0"));
}

class HostConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/graft-ops-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/graft.conf";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  void write(const std::string& text, mode_t mode = 0644) {
    std::ofstream(path_) << text;
    chmod(path_.c_str(), mode);
  }
  std::string dir_, path_;
};

TEST_F(HostConfigFile, ReadsEverySetting) {
  write(R"({"enable": false, "store": "/srv/patches", "tags": ["canary", "eu"],
            "rescan_interval": 5, "model": "hybrid", "prometheus": "/tmp/g.prom"})");
  HostConfig c = load_host_config(path_);
  EXPECT_FALSE(c.enable);
  EXPECT_EQ(c.store, "/srv/patches");
  EXPECT_EQ(c.tags, (std::vector<std::string>{"canary", "eu"}));
  EXPECT_EQ(c.rescan_interval_s, 5);
  EXPECT_EQ(c.model, Model::hybrid);
  EXPECT_EQ(c.prometheus, "/tmp/g.prom");
  EXPECT_EQ(c.source, path_);
}

TEST_F(HostConfigFile, RefusesTyposWrongTypesAndWritableFiles) {
  write(R"({"tag": ["canary"]})");
  EXPECT_THROW(load_host_config(path_), Error);
  write(R"({"tags": "canary"})");
  EXPECT_THROW(load_host_config(path_), Error);
  write(R"({"model": "fast"})");
  EXPECT_THROW(load_host_config(path_), Error);
  write(R"({"enable": true})", 0666);
  EXPECT_THROW(load_host_config(path_), Error);
  write("not json");
  EXPECT_THROW(load_host_config(path_), Error);
}

TEST_F(HostConfigFile, MissingDefaultIsEmptyMissingNamedFileIsAnError) {
  EXPECT_THROW(load_host_config(dir_ + "/none.conf"), Error);
}

TEST(Prometheus, GaugesPerPatchAndEscapedLabels) {
  DesiredPatch d = stored("fix \"quoted\"\\", "T", false);
  DesiredPatch other = stored("later", "T", false, Standing::OtherTag);
  StatusReport r;
  PatchStatus ps;
  ps.patch = &d;
  ps.processes = {{1, "a", ProcessState::Patched, ""}, {2, "b", ProcessState::NotPatched, "x"},
                  {3, "c", ProcessState::Unpatchable, "traced"}, {4, "d", ProcessState::Patched, ""}};
  r.patches.push_back(ps);
  PatchStatus po;
  po.patch = &other;
  r.patches.push_back(po);
  r.uninspectable = 7;
  SyncRecord last{1700000000, true, 1, 2, 0, "daemon"};
  std::string text = prometheus_text(r, last);
  EXPECT_NE(text.find(R"(graft_patch_processes{patch="fix \"quoted\"\\",)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(state="patched"} 2)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(state="unpatched"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(state="unpatchable"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(graft_patch_applicable{patch="later",id="later-id",standing="other-tag"} 0)"),
            std::string::npos);
  EXPECT_NE(text.find("graft_uninspectable_processes 7\n"), std::string::npos);
  EXPECT_NE(text.find("graft_all_patched 0\n"), std::string::npos);
  EXPECT_NE(text.find("graft_last_sync_timestamp_seconds 1700000000\n"), std::string::npos);
  EXPECT_NE(text.find("graft_last_sync_success 1\n"), std::string::npos);
}

}  // namespace
}  // namespace graft::ops
