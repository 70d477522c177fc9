// Patching loadable modules: which module an object is linked into, the
// module symbols of /proc/kallsyms, the per-object livepatch sections and
// structures, per-object state in sysfs, and a shipped module laid out.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "elf/elf_file.h"
#include "kernel/kernel_build.h"
#include "kernel/kernel_symbols.h"
#include "kernel/header_users.h"
#include "kernel/klp_convert.h"
#include "kernel/livepatch_sysfs.h"
#include "kernel/object_owner.h"
#include "kernel/package_modules.h"
#include "kernel/patch_source.h"
#include "kernel/shipped_module.h"

namespace graft::kernel {
namespace {

namespace fs = std::filesystem;

class ModuleDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("graft-kmod-" + std::to_string(getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel) << text;
  }
  std::string path(const std::string& rel) const { return (dir / rel).string(); }
  fs::path dir;
};

using ObjectOwnerTest = ModuleDir;
TEST_F(ObjectOwnerTest, ReadsTheModuleFromTheCommandFile) {
  write("order", "kernel/crypto/af_alg.ko\nkernel/fs/fat/vfat.ko\nkernel/drivers/net/foo-bar.ko\n");
  write("tree/crypto/.af_alg.o.cmd",
        "cmd_crypto/af_alg.o := gcc -Wp,-MMD,crypto/.af_alg.o.d -DMODULE -DKBUILD_BASENAME='\"af_alg\"' "
        "-DKBUILD_MODNAME='\"af_alg\"' -D__KBUILD_MODNAME=kmod_af_alg -c -o crypto/af_alg.o crypto/af_alg.c\n"
        "source_crypto/af_alg.o := crypto/af_alg.c\n");
  ObjectOwner o = owner_of_object(path("tree"), "crypto/af_alg.o", path("order"));
  EXPECT_EQ(o.module, "af_alg");
  EXPECT_EQ(o.module_file, "kernel/crypto/af_alg.ko");
  // An object in a subdirectory of its module's Makefile; '-' in file names.
  write("tree/drivers/net/sub/.x.o.cmd", "cmd_drivers/net/sub/x.o := gcc -DMODULE -DKBUILD_MODNAME='\"foo_bar\"' x.c\n");
  EXPECT_EQ(owner_of_object(path("tree"), "drivers/net/sub/x.o", path("order")).module_file,
            "kernel/drivers/net/foo-bar.ko");
}

TEST_F(ObjectOwnerTest, BuiltInObjectsAreVmlinuxAndUnshippedModulesAreRefused) {
  write("order", "kernel/crypto/af_alg.ko\n");
  write("tree/kernel/.pid.o.cmd",
        "cmd_kernel/pid.o := gcc -DKBUILD_MODFILE='\"kernel/pid\"' -DKBUILD_MODNAME='\"pid\"' -c kernel/pid.c\n");
  EXPECT_EQ(owner_of_object(path("tree"), "kernel/pid.o", path("order")).module, "");
  write("tree/fs/x/.y.o.cmd", "cmd_fs/x/y.o := gcc -DMODULE -DKBUILD_MODNAME='\"y\"' -c fs/x/y.c\n");
  try {
    owner_of_object(path("tree"), "fs/x/y.o", path("order"));
    FAIL() << "an unshipped module was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("part of module y, which the kernel package does not ship"), std::string::npos)
        << e.what();
  }
  write("tree/fs/x/.z.o.cmd", "cmd_fs/x/z.o := gcc -DMODULE -DKBUILD_MODNAME='\"a:b\"' -c fs/x/z.c\n");
  EXPECT_THROW(owner_of_object(path("tree"), "fs/x/z.o", path("order")), Error);
  EXPECT_THROW(owner_of_object(path("tree"), "fs/x/none.o", path("order")), Error);  // never compiled
}

TEST(ModuleKallsyms, KeepsEachModulesSymbolsInFileOrder) {
  auto t = SymbolTable::parse(
      "ffffffff81000000 T _text\n"
      "ffffffffc0002000 t helper\t[af_alg]\n"
      "ffffffffc0001000 t helper\t[af_alg]\n"
      "ffffffffc0003000 T af_alg_sendmsg\t[af_alg]\n"
      "ffffffffc0003900 t next_fn\t[af_alg]\n"
      "ffffffffc0009000 t helper\t[other]\n",
      "kallsyms");
  EXPECT_EQ(t.size(), 1u);
  auto h = t.module_named("af_alg", "helper");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0]->address, 0xffffffffc0002000u);  // file order, as livepatch counts
  EXPECT_TRUE(t.module_loaded("af_alg"));
  EXPECT_FALSE(t.module_loaded("algif_skcipher"));
  EXPECT_EQ(t.module_next_after("af_alg", 0xffffffffc0003000)->name, "next_fn");
}

TEST(ModuleLivepatchNames, CarryTheObject) {
  EXPECT_EQ(livepatch_symbol_name("helper", 2, "af_alg"), ".klp.sym.af_alg.helper,2");
  EXPECT_EQ(livepatch_symbol_object(".klp.sym.af_alg.helper,2"), "af_alg");
  EXPECT_EQ(livepatch_symbol_object(".klp.sym.vmlinux.x,0"), "vmlinux");
  EXPECT_EQ(livepatch_symbol_object("helper"), "");
}

TEST(ModuleLivepatchStructures, OneObjectPerModule) {
  std::string c = klp_structures({{"cmdline_proc_show", 0, "graft_new_0", ""},
                                  {"af_alg_sendmsg", 0, "graft_new_1", "af_alg"}},
                                 {}, false, "fix.patch");
  EXPECT_NE(c.find(".name = NULL"), std::string::npos) << c;
  EXPECT_NE(c.find(".name = \"af_alg\""), std::string::npos) << c;
  EXPECT_NE(c.find("{ .old_name = \"af_alg_sendmsg\", .new_func = graft_new_1"), std::string::npos) << c;
}

using ModuleConvert = ModuleDir;
TEST_F(ModuleConvert, SplitsRelocationsPerObject) {
  write("m.s",
        ".text\n.globl f\nf: call vm_hidden\n call mod_static\n ret\n"
        ".section __jump_table,\"aw\"\n.quad mod_key\n");
  std::string obj = path("m.o");
  if (std::system(("as --64 -o " + obj + " " + path("m.s")).c_str()) != 0) GTEST_SKIP() << "no x86-64 assembler";
  // The build names a module's symbols itself; the pass keeps them.
  std::string rename = "objcopy --redefine-sym mod_static=.klp.sym.af_alg.mod_static,0 " + obj;
  ASSERT_EQ(std::system(rename.c_str()), 0);
  auto r = convert_to_livepatch_module(
      obj, {{"vm_hidden", ".klp.sym.vmlinux.vm_hidden,0"}, {".klp.sym.af_alg.mod_static,0", ".klp.sym.af_alg.mod_static,0"}},
      ".graft.kernel", "{}");
  EXPECT_EQ(r.relocations_moved, 2u);
  ElfFile elf(obj);
  ASSERT_NE(elf.section(".klp.rela.vmlinux.text"), nullptr);
  ASSERT_NE(elf.section(".klp.rela.af_alg.text"), nullptr);
  EXPECT_EQ(elf.relocations(*elf.section(".klp.rela.af_alg.text")).size(), 1u);
  // A module's symbol in a table the kernel reads at load time: refused.
  write("k.s", ".section __jump_table,\"aw\"\n.quad mod_key\n");
  std::string k = path("k.o");
  ASSERT_EQ(std::system(("as --64 -o " + k + " " + path("k.s")).c_str()), 0);
  ASSERT_EQ(std::system(("objcopy --redefine-sym mod_key=.klp.sym.af_alg.mod_key,0 " + k).c_str()), 0);
  try {
    convert_to_livepatch_module(k, {{".klp.sym.af_alg.mod_key,0", ".klp.sym.af_alg.mod_key,0"}}, ".graft.kernel", "{}");
    FAIL() << "a module symbol in __jump_table was converted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resolves a module's symbols only when that module loads"), std::string::npos)
        << e.what();
  }
}

using ShippedModuleTest = ModuleDir;
TEST_F(ShippedModuleTest, LaysOutAndFingerprintsAFunction) {
  // A module-like object: two functions, ftrace sites, a call between
  // them, a call out, and an __init function.
  write("m.s",
        ".text\n"
        ".type helper,@function\nhelper: call __fentry__\n ret\n.size helper,.-helper\n"
        ".globl fn\n.type fn,@function\nfn: call __fentry__\n call helper\n call printk\n ret\n.size fn,.-fn\n"
        ".type nofentry,@function\nnofentry: ret\n.size nofentry,.-nofentry\n"
        ".section .init.text,\"ax\"\n.type setup,@function\nsetup: call __fentry__\n ret\n.size setup,.-setup\n"
        ".section __mcount_loc,\"a\"\n.quad helper\n.quad fn\n.quad setup\n");
  std::string obj = path("m.ko");
  if (std::system(("as --64 -o " + obj + " " + path("m.s")).c_str()) != 0) GTEST_SKIP() << "no x86-64 assembler";
  ShippedModule m(obj, "m");
  auto fn = m.named("fn");
  ASSERT_EQ(fn.size(), 1u);
  RunningFunction code = m.code(fn[0]);
  // `call helper` at +5 reaches helper in the layout.
  int32_t rel;
  std::memcpy(&rel, code.bytes.data() + 6, 4);
  int64_t off = -1;
  EXPECT_EQ(m.function_at(code.address + 10 + rel, &off, ""), "helper");
  EXPECT_EQ(off, 0);
  FunctionFingerprint f = m.patchable_function("fn", 0);
  EXPECT_EQ(f.object, "m");
  EXPECT_EQ(f.size, 16u);
  size_t relocations = 0;
  for (const auto& r : f.masked) relocations += r.reason == "relocation";
  EXPECT_EQ(relocations, 2u);  // __fentry__, printk (the assembler resolved `call helper`)
  EXPECT_EQ(f.bytes, m.file_bytes("fn", 0));
  try {
    m.patchable_function("nofentry", 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no __fentry__ call"), std::string::npos) << e.what();
  }
  try {
    m.patchable_function("setup", 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("__init"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.patchable_function("missing", 0), Error);
}

using ObjectSysfs = ModuleDir;
TEST_F(ObjectSysfs, ReadsEachObjectsState) {
  write("sys/p/enabled", "1\n");
  write("sys/p/transition", "0\n");
  write("sys/p/vmlinux/patched", "1\n");
  write("sys/p/vmlinux/cmdline_proc_show,1/x", "");
  write("sys/p/af_alg/patched", "0\n");
  write("sys/p/af_alg/af_alg_sendmsg,1/x", "");
  LivepatchSysfs s(path("sys"), path("proc"));
  auto p = s.read("p");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->objects.size(), 2u);
  EXPECT_EQ(p->objects[0].name, "af_alg");
  EXPECT_FALSE(p->objects[0].patched);
  EXPECT_TRUE(p->objects[1].patched);
  write("sys/p/af_alg/patched", "yes\n");
  EXPECT_THROW(s.read("p"), Error);
}

}  // namespace
}  // namespace graft::kernel

namespace graft::kernel {
namespace {

using HeaderUsers = ModuleDir;
TEST_F(HeaderUsers, FindsIncludersThroughOtherHeaders) {
  write("tree/include/crypto/if_alg.h", "static inline int f(void) { return 1; }\n");
  write("tree/include/crypto/wrap.h", "#ifndef W\n# include <crypto/if_alg.h>\n#endif\n");
  write("tree/crypto/af_alg.c", "#include <linux/x.h>\n#include <crypto/if_alg.h>\n");
  write("tree/crypto/other.c", "#include \"local.h\"\n");
  write("tree/crypto/local.h", "#include <crypto/wrap.h>\n");
  write("tree/crypto/unrelated.c", "/* #include <crypto/if_alg.h> is not a directive */ int x;\n");
  write("tree/tools/t.c", "#include <crypto/if_alg.h>\n");            // never in the kernel
  write("tree/arch/arm64/a.c", "#include <crypto/if_alg.h>\n");       // another architecture
  HeaderIncluders r = c_files_including(path("tree"), "include/crypto/if_alg.h");
  EXPECT_EQ(r.sources, (std::vector<std::string>{"crypto/af_alg.c", "crypto/other.c"}));
  EXPECT_EQ(r.headers_through, 2u);
  EXPECT_THROW(c_files_including(path("tree"), "include/crypto/none.h"), Error);
}

TEST_F(HeaderUsers, ReadsKbuildDependencies) {
  write("tree/crypto/.af_alg.o.cmd",
        "cmd_crypto/af_alg.o := gcc -c crypto/af_alg.c\n\nsource_crypto/af_alg.o := crypto/af_alg.c\n\n"
        "deps_crypto/af_alg.o := \\\n  include/linux/kconfig.h \\\n    $(wildcard include/config/FOO) \\\n"
        "  include/crypto/if_alg.h \\\n\ncrypto/af_alg.o: $(deps_crypto/af_alg.o)\n\n"
        "$(deps_crypto/af_alg.o):\n  include/linux/sched.h\n");
  EXPECT_TRUE(object_depends_on(path("tree"), "crypto/af_alg.o", "include/crypto/if_alg.h"));
  EXPECT_FALSE(object_depends_on(path("tree"), "crypto/af_alg.o", "include/linux/sched.h"));
  EXPECT_THROW(object_depends_on(path("tree"), "crypto/none.o", "include/crypto/if_alg.h"), Error);
}

// A hand-written patch names a module's function (GRAFT_REPLACE_IN), or
// graft finds the one shipped module defining it.
using SourceModules = ModuleDir;
TEST_F(SourceModules, FindsModulesAndTheOnesDefiningAFunction) {
  write("lib/modules.order", "kernel/net/ipv4/gre.ko\nkernel/net/ipv4/ip_gre.ko\nkernel/drivers/net/foo-bar.ko\n");
  write("a.s", ".text\n.type gre_rcv,@function\ngre_rcv: ret\n.size gre_rcv,1\n");
  write("b.s", ".data\n.type gre_rcv,@object\ngre_rcv: .quad 0\n.size gre_rcv,8\n");
  fs::create_directories(dir / "lib/kernel/net/ipv4");
  if (std::system(("as --64 -o " + path("lib/kernel/net/ipv4/gre.ko") + " " + path("a.s")).c_str()) != 0)
    GTEST_SKIP() << "no x86-64 assembler";
  ASSERT_EQ(std::system(("as --64 -o " + path("lib/kernel/net/ipv4/ip_gre.ko") + " " + path("b.s")).c_str()), 0);
  EXPECT_EQ(package_module(path("lib"), "foo_bar").file, "kernel/drivers/net/foo-bar.ko");
  try {
    package_module(path("lib"), "af_alg");
    FAIL() << "a module the package does not ship was found";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("module af_alg is not shipped"), std::string::npos) << e.what();
  }
  auto functions = modules_defining(path("lib"), "gre_rcv", true);
  ASSERT_EQ(functions.size(), 1u);
  EXPECT_EQ(functions[0].name, "gre");
  EXPECT_EQ(modules_defining(path("lib"), "gre_rcv", false).size(), 2u);
  EXPECT_EQ(modules_defining(path("lib"), "gre_rcv", false, {"gre"}).size(), 1u);
  write("lib/modules.order", "kernel/../x.ko\n");
  EXPECT_THROW(package_modules(path("lib")), Error);
}

TEST_F(SourceModules, ReadsReplaceInRecords) {
  write("p.s", ".section .graft.klp,\"a\"\n"
               ".asciz \"graft:replace_in:af_alg,af_alg_sendmsg,0:fixed_sendmsg\"\n"
               ".asciz \"graft:replace:cmdline_proc_show,0:fixed_show\"\n");
  if (std::system(("as --64 -o " + path("p.o") + " " + path("p.s")).c_str()) != 0) GTEST_SKIP() << "no assembler";
  KernelPatchSource d = read_patch_declarations(path("p.o"), "p.c");
  ASSERT_EQ(d.replacements.size(), 2u);
  EXPECT_EQ(d.replacements[0].object, "af_alg");
  EXPECT_EQ(d.replacements[0].target, "af_alg_sendmsg");
  EXPECT_EQ(d.replacements[0].replacement, "fixed_sendmsg");
  EXPECT_EQ(d.replacements[1].object, "");
  write("q.s", ".section .graft.klp,\"a\"\n.asciz \"graft:replace_in:af_alg,0:fixed\"\n");
  ASSERT_EQ(std::system(("as --64 -o " + path("q.o") + " " + path("q.s")).c_str()), 0);
  EXPECT_THROW(read_patch_declarations(path("q.o"), "q.c"), Error);
}

}  // namespace
}  // namespace graft::kernel
