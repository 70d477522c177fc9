// What graft reads about kernels from outside: System.map and
// /proc/kallsyms, Module.symvers, the manifest inside a module, and the
// livepatch sysfs and /proc files (on fake trees); and the livepatch
// module conversion of an assembled object.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "elf/elf_file.h"
#include "kernel/kernel_build.h"
#include "kernel/kernel_symbols.h"
#include "kernel/klp_convert.h"
#include "kernel/livepatch_sysfs.h"
#include "kernel/manifest.h"
#include "ops/patch_status.h"
#include "ops/prometheus.h"

namespace graft::kernel {
namespace {

namespace fs = std::filesystem;

const char* kMap =
    "ffffffff81000000 T _text\n"
    "ffffffff813f1870 t cmdline_proc_show\n"
    "ffffffff813f18a0 t c_next\n"
    "ffffffff81400000 t show_val\n"
    "ffffffff81400040 t show_val\n"
    "ffffffff81400080 T after\n"
    "ffffffffc0000000 t mod_fn\t[ext4]\n";

TEST(KernelSymbols, ParsesAndResolvesByPosition) {
  auto t = SymbolTable::parse(kMap, "System.map");
  EXPECT_EQ(t.size(), 6u);  // module symbols are not vmlinux's
  EXPECT_EQ(t.resolve("cmdline_proc_show", 0).address, 0xffffffff813f1870u);
  EXPECT_EQ(t.resolve("show_val", 2).address, 0xffffffff81400040u);
  EXPECT_THROW(t.resolve("show_val", 0), Error);  // ambiguous without a position
  EXPECT_THROW(t.resolve("show_val", 3), Error);
  EXPECT_THROW(t.resolve("missing", 0), Error);
  EXPECT_EQ(t.next_after(0xffffffff813f1870u)->name, "c_next");
  EXPECT_EQ(t.next_after(0xffffffff81400080u), nullptr);
}

TEST(KernelSymbols, TextAtPrefersTheAliasAsked) {
  auto t = SymbolTable::parse("ffffffff81000000 T _text\n"
                              "ffffffff81000100 T __memcpy\n"
                              "ffffffff81000100 T memcpy\n"
                              "ffffffff81000200 T after\n",
                              "System.map");
  EXPECT_EQ(t.text_at(0xffffffff81000110u)->name, "memcpy");  // the last name by default
  EXPECT_EQ(t.text_at(0xffffffff81000110u, "__memcpy")->name, "__memcpy");
  EXPECT_EQ(t.text_at(0xffffffff81000110u, "after")->name, "memcpy");  // not at that address
}

TEST(KernelSymbols, AmbiguityMessageNamesThePositions) {
  auto t = SymbolTable::parse(kMap, "System.map");
  try {
    t.resolve("show_val", 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("defined 2 times"), std::string::npos) << e.what();
  }
}

TEST(KernelSymbols, RefusesMalformedLines) {
  EXPECT_THROW(SymbolTable::parse("ffffffff81000000 T\n", "m"), Error);
  EXPECT_THROW(SymbolTable::parse("zzzz T name\n", "m"), Error);
  EXPECT_THROW(SymbolTable::parse("ffffffff81000000 TT name\n", "m"), Error);
  EXPECT_THROW(SymbolTable::parse("ffffffff81000000 t name ext4\n", "m"), Error);
  EXPECT_THROW(SymbolTable::parse("1ffffffff81000000 t name\n", "m"), Error);
  EXPECT_THROW(SymbolTable::parse("", "m"), Error);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/graft-kernel-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { fs::remove_all(dir); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel) << text;
  }
  fs::path dir;
};

using ModuleSymvers = TempDir;
TEST_F(ModuleSymvers, NamesEachExporter) {
  write("Module.symvers",
        "0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n"
        "0x12345678\tseq_printf\tvmlinux\tEXPORT_SYMBOL_GPL\t\n"
        "0x11111111\text4_thing\tfs/ext4/ext4\tEXPORT_SYMBOL\t\n");
  auto s = read_exported_symbols((dir / "Module.symvers").string());
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.at("seq_printf"), "vmlinux");
  EXPECT_EQ(s.at("ext4_thing"), "ext4");
  write("bad", "0x1\tname_without_owner\n");
  EXPECT_THROW(read_exported_symbols((dir / "bad").string()), Error);
}

KernelPatchManifest sample() {
  KernelPatchManifest m;
  m.name = "fix_cmdline";
  m.release = "6.1.0-47-cloud-amd64";
  m.anchor_address = 0xffffffff81000000u;
  FunctionFingerprint f;
  f.name = "cmdline_proc_show";
  f.address = 0xffffffff813f1870u;
  f.size = 8;
  f.next_symbol = "c_next";
  f.bytes = {0xe8, 1, 2, 3, 4, 0x53, 0xc3, 0xcc};
  f.masked = {{0, 5, "ftrace"}};
  f.absolute32 = {1};
  f.percpu_pcrel32 = {4};
  m.functions.push_back(f);
  m.livepatch_symbols = {".klp.sym.vmlinux.saved_command_line,0"};
  return m;
}

TEST(KernelManifest, RoundTrips) {
  auto m = manifest_from_json(manifest_to_json(sample()), "x.ko");
  EXPECT_EQ(m.name, "fix_cmdline");
  ASSERT_EQ(m.functions.size(), 1u);
  EXPECT_EQ(m.functions[0].bytes, sample().functions[0].bytes);
  EXPECT_EQ(m.functions[0].masked[0].reason, "ftrace");
  EXPECT_EQ(m.functions[0].absolute32, std::vector<uint32_t>{1});
  EXPECT_EQ(m.functions[0].percpu_pcrel32, std::vector<uint32_t>{4});
  EXPECT_EQ(m.livepatch_symbols, sample().livepatch_symbols);
}

TEST(KernelManifest, RefusesInconsistentValues) {
  auto bad = [](auto change) {
    auto m = sample();
    change(m);
    return manifest_to_json(m);
  };
  EXPECT_THROW(manifest_from_json(bad([](auto& m) { m.name = "../x"; }), "x.ko"), Error);
  EXPECT_THROW(manifest_from_json(bad([](auto& m) { m.functions[0].size = 9; }), "x.ko"), Error);
  EXPECT_THROW(manifest_from_json(bad([](auto& m) { m.functions[0].masked[0].length = 9; }), "x.ko"), Error);
  EXPECT_THROW(manifest_from_json(bad([](auto& m) { m.functions[0].absolute32 = {5}; }), "x.ko"), Error);
  EXPECT_THROW(manifest_from_json(bad([](auto& m) { m.functions[0].percpu_pcrel32 = {6}; }), "x.ko"), Error);
  EXPECT_THROW(manifest_from_json(bad([](auto& m) { m.functions.clear(); }), "x.ko"), Error);
  EXPECT_THROW(manifest_from_json(bad([](auto& m) { m.format = 2; }), "x.ko"), Error);
  EXPECT_THROW(manifest_from_json("{", "x.ko"), Error);
  EXPECT_THROW(manifest_from_json("{\"format\":1}", "x.ko"), Error);
}

TEST(KernelBuild, LivepatchNames) {
  EXPECT_EQ(livepatch_name_for("/tmp/fix-cmdline.ko"), "fix_cmdline");
  EXPECT_EQ(livepatch_name_for("fix"), "fix");
  EXPECT_THROW(livepatch_name_for("bad name.ko"), Error);
  EXPECT_THROW(livepatch_name_for(".ko"), Error);
  EXPECT_THROW(livepatch_name_for(std::string(60, 'a') + ".ko"), Error);
}

using Sysfs = TempDir;
TEST_F(Sysfs, ReadsPatchesAndPendingTasks) {
  write("sys/p1/enabled", "1\n");
  write("sys/p1/transition", "1\n");
  write("sys/p1/force", "");
  write("sys/p1/vmlinux/common_nsleep,1/patched", "1\n");
  write("proc/12/task/12/patch_state", "0\n");
  write("proc/12/task/12/comm", "sleep\n");
  write("proc/12/task/12/stack", "[<0>] common_nsleep+0x3f/0x50\n[<0>] do_syscall_64+0x55/0x80\n");
  write("proc/13/task/13/patch_state", "1\n");
  write("proc/14/task/14/patch_state", "-1\n");  // not in a transition: not pending
  write("proc/self/task/1/patch_state", "0\n");  // not a pid: ignored
  LivepatchSysfs s((dir / "sys").string(), (dir / "proc").string());
  ASSERT_TRUE(s.available());
  EXPECT_EQ(s.names(), std::vector<std::string>{"p1"});
  auto p = s.read("p1");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->enabled);
  EXPECT_TRUE(p->in_transition);
  ASSERT_EQ(p->functions.size(), 1u);
  EXPECT_EQ(p->functions[0].object, "vmlinux");
  EXPECT_EQ(p->functions[0].name, "common_nsleep");
  EXPECT_EQ(p->functions[0].sympos, 1u);
  EXPECT_FALSE(s.read("p2"));
  auto pending = s.pending_tasks(1);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].pid, 12);
  EXPECT_EQ(pending[0].comm, "sleep");
  ASSERT_EQ(pending[0].stack.size(), 2u);
  EXPECT_EQ(pending[0].stack[0], "[<0>] common_nsleep+0x3f/0x50");
  s.set_enabled("p1", false);
  std::ifstream in(dir / "sys/p1/enabled");
  std::string v;
  in >> v;
  EXPECT_EQ(v, "0");
}

TEST_F(Sysfs, RefusesValuesTheKernelNeverWrites) {
  write("sys/p1/enabled", "2\n");
  write("sys/p1/transition", "0\n");
  write("proc/12/task/12/patch_state", "7\n");
  LivepatchSysfs s((dir / "sys").string(), (dir / "proc").string());
  EXPECT_THROW(s.read("p1"), Error);
  EXPECT_THROW(s.read("../etc"), Error);
  EXPECT_THROW(s.set_enabled("a/b", true), Error);
  EXPECT_THROW(s.pending_tasks(1), Error);
  write("sys/bad name/enabled", "1\n");
  EXPECT_THROW(s.names(), Error);
}

// graft status's kernel section: what the sysfs shows, and whether it
// counts as patched.
TEST_F(Sysfs, StatusReportsKernelLivepatches) {
  LivepatchSysfs none((dir / "missing").string(), (dir / "proc").string());
  EXPECT_FALSE(ops::kernel_status(none).livepatch);
  EXPECT_TRUE(ops::kernel_status(none).settled());

  write("sys/done/enabled", "1\n");
  write("sys/done/transition", "0\n");
  write("sys/done/vmlinux/cmdline_proc_show,0/patched", "1\n");
  LivepatchSysfs s((dir / "sys").string(), (dir / "proc").string());
  auto k = ops::kernel_status(s);
  ASSERT_TRUE(k.livepatch);
  ASSERT_EQ(k.patches.size(), 1u);
  EXPECT_TRUE(k.settled());

  write("sys/going/enabled", "1\n");
  write("sys/going/transition", "1\n");
  write("proc/12/task/12/patch_state", "0\n");
  write("proc/12/task/12/comm", "sleep\n");
  write("proc/12/task/12/stack", "[<0>] common_nsleep+0x3f/0x50\n");
  write("proc/13/task/13/patch_state", "1\n");
  k = ops::kernel_status(s);
  ASSERT_EQ(k.patches.size(), 2u);
  EXPECT_EQ(k.pending_tasks, 1u);
  EXPECT_FALSE(k.settled());
  ops::StatusReport report;
  report.kernel = k;
  EXPECT_FALSE(report.all_patched());
  std::string prom = ops::prometheus_text(report, std::nullopt);
  EXPECT_NE(prom.find("graft_kernel_livepatch_transition{patch=\"going\"} 1"), std::string::npos) << prom;
  EXPECT_NE(prom.find("graft_kernel_livepatch_enabled{patch=\"done\"} 1"), std::string::npos) << prom;
  EXPECT_NE(prom.find("graft_kernel_livepatch_pending_tasks 1"), std::string::npos) << prom;
  EXPECT_EQ(k.direction, "patching");

  // Not enabled: unpatching while a task is still at 1 (pid 13)...
  write("sys/going/enabled", "0\n");
  k = ops::kernel_status(s);
  EXPECT_EQ(k.direction, "unpatching");
  EXPECT_EQ(k.pending_tasks, 1u);
  // ... and, with every task at 0, the start of an enable (livepatch sets
  // `enabled' only once the transition started) or the end of a disable.
  write("proc/13/task/13/patch_state", "0\n");
  k = ops::kernel_status(s);
  EXPECT_EQ(k.direction, "");
  EXPECT_EQ(k.pending_tasks, 0u);
  EXPECT_FALSE(k.settled());

  write("sys/going/enabled", "7\n");  // never written by the kernel
  k = ops::kernel_status(s);
  EXPECT_FALSE(k.error.empty());
  EXPECT_FALSE(k.settled());
}

using KlpConvert = TempDir;
TEST_F(KlpConvert, ConvertsLoadTimeSectionsAndDotsSectionNames) {
  // References to non-exported vmlinux symbols from .text, a jump label
  // entry and a section whose name has no leading dot.
  write("m.s",
        ".text\n.globl f\nf: call hidden_fn\n ret\n"
        ".section __jump_table,\"aw\"\n.quad hidden_key\n"
        ".section __tracepoints_ptrs,\"a\"\n.quad hidden_var\n");
  std::string obj = (dir / "m.o").string();
  std::string cmd = "as --64 -o " + obj + " " + (dir / "m.s").string();
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "no x86-64 assembler";
  auto r = convert_to_livepatch_module(obj,
                                       {{"hidden_fn", ".klp.sym.vmlinux.hidden_fn,0"},
                                        {"hidden_key", ".klp.sym.vmlinux.hidden_key,0"},
                                        {"hidden_var", ".klp.sym.vmlinux.hidden_var,0"}},
                                       ".graft.kernel", "{}");
  EXPECT_EQ(r.relocations_moved, 3u);
  ElfFile elf(obj);
  for (const char* name : {".klp.rela.vmlinux.text", ".klp.rela.vmlinux.__jump_table",
                           ".klp.rela.vmlinux.__tracepoints_ptrs"}) {
    const ElfSection* sec = elf.section(name);
    ASSERT_NE(sec, nullptr) << name;
    EXPECT_EQ(elf.relocations(*sec).size(), 1u) << name;
  }
  EXPECT_EQ(elf.section(".klp.rela.vmlinux__tracepoints_ptrs"), nullptr);
}

}  // namespace

}  // namespace graft::kernel
