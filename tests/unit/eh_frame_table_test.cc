#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "elf/eh_frame_table.h"
#include "elf/elf_file.h"

namespace graft {
namespace {

// The index graft builds from .eh_frame is the one the linker wrote into
// .eh_frame_hdr: checked on this test program, which has both.
TEST(EhFrameTable, MatchesTheLinkersHeader) {
  ElfFile self("/proc/self/exe");
  const ElfSection* eh = self.section(".eh_frame");
  const ElfSection* hdr = self.section(".eh_frame_hdr");
  ASSERT_TRUE(eh && hdr);
  Bytes frames = self.section_data(eh->index);
  Bytes header = self.section_data(hdr->index);
  ASSERT_GE(header.size(), 12u);
  ASSERT_EQ(header[2], 0x03);  // udata4 count
  ASSERT_EQ(header[3], 0x3b);  // datarel|sdata4 entries
  uint32_t count;
  std::memcpy(&count, header.data() + 8, 4);
  ASSERT_GE(header.size(), 12 + 8ull * count);
  std::vector<FdeEntry> want;
  for (uint32_t i = 0; i < count; ++i) {
    int32_t row[2];
    std::memcpy(row, header.data() + 12 + 8 * i, 8);
    want.push_back({hdr->addr + row[0], hdr->addr + row[1]});
  }
  std::vector<FdeEntry> got = eh_frame_table(frames, eh->addr);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_GT(got.size(), 100u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].pc, want[i].pc) << "FDE " << i;
    EXPECT_EQ(got[i].fde, want[i].fde) << "FDE " << i;
  }
}

// Damaged sections give a partial index, never a crash or an FDE outside.
TEST(EhFrameTable, DamagedInputIsSafe) {
  ElfFile self("/proc/self/exe");
  const ElfSection* eh = self.section(".eh_frame");
  ASSERT_TRUE(eh);
  Bytes frames = self.section_data(eh->index);
  EXPECT_TRUE(eh_frame_table({}, 0).empty());
  for (size_t cut : {size_t{1}, size_t{7}, size_t{100}, frames.size() / 2}) {
    auto got = eh_frame_table(std::span<const uint8_t>(frames.data(), cut), eh->addr);
    for (const auto& e : got) EXPECT_LT(e.fde, eh->addr + cut);
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    Bytes copy = frames;
    for (int k = 0; k < 16; ++k) copy[rng() % copy.size()] = static_cast<uint8_t>(rng());
    auto got = eh_frame_table(copy, eh->addr);
    for (const auto& e : got) EXPECT_LT(e.fde, eh->addr + copy.size());
  }
}

}  // namespace
}  // namespace graft
