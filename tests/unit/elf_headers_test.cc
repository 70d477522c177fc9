// elf/elf_headers.h: the program headers and build-id read with small reads
// agree with libelf's view (ElfFile), and a damaged file is refused, not read
// out of bounds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <elf.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/file.h"
#include "elf/elf_file.h"
#include "elf/elf_headers.h"

namespace graft {
namespace {

std::string self() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, n > 0 ? n : 0);
}

TEST(ElfHeaders, AgreeWithLibelf) {
  for (std::string path : {self(), std::string("/lib/x86_64-linux-gnu/libc.so.6")}) {
    if (access(path.c_str(), R_OK) != 0) continue;
    auto fast = read_elf_headers(path);
    ASSERT_TRUE(fast) << path;
    ElfFile elf(path);
    EXPECT_EQ(fast->type, elf.type()) << path;
    auto segs = elf.load_segments();
    ASSERT_EQ(fast->load_segments.size(), segs.size()) << path;
    for (size_t i = 0; i < segs.size(); ++i) {
      EXPECT_EQ(fast->load_segments[i].vaddr, segs[i].vaddr);
      EXPECT_EQ(fast->load_segments[i].memsz, segs[i].memsz);
      EXPECT_EQ(fast->load_segments[i].offset, segs[i].offset);
    }
    ASSERT_TRUE(fast->build_id) << path;
    EXPECT_EQ(fast->build_id->size(), 40u) << path;
    EXPECT_EQ(read_build_id(path), fast->build_id) << path;
  }
}

TEST(ElfHeaders, DamagedFilesAreRefusedOrReadInBounds) {
  Bytes image = read_file(self(), size_t(1) << 30);
  ASSERT_GT(image.size(), 4096u);
  std::string path = testing::TempDir() + "/graft-elf-headers-test";
  auto with = [&](const Bytes& b) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
    return read_elf_headers(path);
  };
  // Cut inside the program headers: refused.
  EXPECT_FALSE(with(Bytes(image.begin(), image.begin() + 80)));
  // Not ELF.
  EXPECT_FALSE(with(Bytes(64, 0x41)));
  // Every note header's sizes set to huge values: no build-id, no crash.
  Bytes bad = image;
  auto h = read_elf_headers(self());
  ASSERT_TRUE(h);
  Elf64_Ehdr eh;
  std::memcpy(&eh, bad.data(), sizeof eh);
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, bad.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type != PT_NOTE) continue;
    for (uint64_t off = ph.p_offset; off + 12 <= ph.p_offset + ph.p_filesz; off += 12) {
      uint32_t huge = 0xfffffff0;
      std::memcpy(bad.data() + off, &huge, 4);
      std::memcpy(bad.data() + off + 4, &huge, 4);
    }
  }
  auto damaged = with(bad);
  ASSERT_TRUE(damaged);
  EXPECT_FALSE(damaged->build_id);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace graft
