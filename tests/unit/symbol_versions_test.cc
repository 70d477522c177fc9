// Symbol versions of .dynsym and the auxiliary vector: what graft reads to
// bind a patch's IFUNC references (loader/symbol_resolver.h, loader/ifunc.h).
#include <dlfcn.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "elf/elf_file.h"
#include "process/auxv.h"

namespace graft {
namespace {

const ElfSymbol* find(const std::vector<ElfSymbol>& syms, const std::string& name, bool defined,
                      bool default_version) {
  for (const auto& s : syms)
    if (s.name == name && s.defined() == defined && s.default_version == default_version) return &s;
  return nullptr;
}

TEST(SymbolVersions, DefinitionsOfLibc) {
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&free), &info), 0);
  ElfFile libc(info.dli_fname);
  auto syms = libc.dynamic_symbols();
  // memcpy: the default version is the IFUNC of 2.14; 2.2.5 (memmove) is hidden.
  const ElfSymbol* memcpy_new = find(syms, "memcpy", true, true);
  const ElfSymbol* memcpy_old = find(syms, "memcpy", true, false);
  ASSERT_TRUE(memcpy_new && memcpy_old);
  EXPECT_EQ(memcpy_new->version, "GLIBC_2.14");
  EXPECT_EQ(memcpy_new->type, STT_GNU_IFUNC);
  EXPECT_EQ(memcpy_old->version, "GLIBC_2.2.5");
  const ElfSymbol* strlen_sym = find(syms, "strlen", true, true);
  ASSERT_TRUE(strlen_sym);
  EXPECT_EQ(strlen_sym->version, "GLIBC_2.2.5");
}

TEST(SymbolVersions, ImportsOfAnExecutable) {
  ElfFile self("/proc/self/exe");
  auto syms = self.dynamic_symbols();
  const ElfSymbol* f = find(syms, "free", false, true);
  ASSERT_TRUE(f) << "this test binary does not import free";
  EXPECT_EQ(f->version, "GLIBC_2.2.5");
  // Entry 0, the null symbol, has none.
  EXPECT_EQ(syms.at(0).version, "");
}

TEST(Auxv, FindsAnEntry) {
  uint64_t v[] = {AT_PAGESZ, 4096, AT_HWCAP, 0x178bfbff, AT_NULL, 0, AT_HWCAP2, 2};
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(v), sizeof v);
  EXPECT_EQ(auxv_value(bytes, AT_HWCAP), 0x178bfbffu);
  EXPECT_EQ(auxv_value(bytes, AT_PAGESZ), 4096u);
  EXPECT_FALSE(auxv_value(bytes, AT_HWCAP2)) << "an entry after AT_NULL";
  EXPECT_FALSE(auxv_value(bytes.first(24), AT_HWCAP)) << "a truncated pair";
  EXPECT_FALSE(auxv_value(std::span<const uint8_t>(), AT_HWCAP));
}

TEST(Auxv, OfARunningProcess) {
  // (Not getauxval(AT_HWCAP): glibc on x86-64 replaces it by its own bits.)
  EXPECT_EQ(auxv_value(getpid(), AT_PAGESZ), static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(auxv_value(getpid(), AT_ENTRY), getauxval(AT_ENTRY));
  EXPECT_TRUE(auxv_value(getpid(), AT_HWCAP));
  EXPECT_FALSE(auxv_value(-1, AT_HWCAP));
}

}  // namespace
}  // namespace graft
