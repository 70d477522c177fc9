// The transition table as graft keeps it in a target (consistency/
// transition_area.h), here in this process's own memory: entries of exited
// threads are freed, a process that keeps creating threads never fills it,
// and a probe done the way the gates do it finds every live thread.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <random>
#include <vector>

#include "consistency/transition_area.h"

namespace graft {
namespace {

class AreaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_ = TransitionAreaLayout::of(0, 256, 128);
    buffer_ = static_cast<uint8_t*>(std::aligned_alloc(4096, layout_.size));
    layout_ = TransitionAreaLayout::of(reinterpret_cast<uint64_t>(buffer_), 256, 128);
  }
  void TearDown() override { std::free(buffer_); }

  const graft_universe_entry* table() const {
    return reinterpret_cast<const graft_universe_entry*>(buffer_ + layout_.table_offset);
  }
  // The gates' probe (arch/x86_64/gate.cc): from the hash, until the key
  // or an empty slot.
  std::optional<uint8_t> probe(uint64_t tp) const {
    uint32_t mask = layout_.capacity - 1;
    for (uint32_t i = graft_transition_slot(tp, layout_.capacity), n = 0; n <= mask; i = (i + 1) & mask, ++n) {
      if (table()[i].thread_pointer == tp) return table()[i].universe;
      if (table()[i].thread_pointer == 0) return std::nullopt;
    }
    ADD_FAILURE() << "no empty slot left: a probe for an absent key would never end";
    return std::nullopt;
  }
  size_t nonzero() const {
    size_t n = 0;
    for (uint32_t i = 0; i < layout_.capacity; ++i) n += table()[i].thread_pointer != 0;
    return n;
  }

  TransitionAreaLayout layout_;
  uint8_t* buffer_ = nullptr;
  ProcessMemory memory_{getpid()};
};

// Thread pointers as glibc hands them out: page-spread TCB addresses.
uint64_t fake_tp(uint64_t n) { return 0x7f0000000000 + n * 0x801000 + 0x6c0; }

TEST_F(AreaTest, ChurnNeverFillsTheTable) {
  TransitionArea area(memory_, layout_, getpid());
  area.initialize({}, Universe::Old, Universe::Old);
  std::mt19937 rng(7);
  std::map<uint64_t, Universe> live;
  uint64_t next = 1;
  // 20000 threads come and go, up to 40 alive at once, in a table of 256.
  for (int step = 0; step < 20000; ++step) {
    if (live.size() < 40 && (live.empty() || rng() % 2)) {
      uint64_t tp = fake_tp(next++);
      Universe u = rng() % 2 ? Universe::New : Universe::Old;
      ASSERT_NO_THROW(area.insert(tp, u, Universe::Old)) << "step " << step;
      live[tp] = u;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      area.remove(it->first);
      live.erase(it);
    }
    if (step % 97 == 0) {
      for (const auto& [tp, u] : live) {
        auto got = probe(tp);
        ASSERT_TRUE(got) << "live thread " << std::hex << tp << " not found at step " << std::dec << step;
        EXPECT_EQ(*got, static_cast<uint8_t>(u));
        EXPECT_TRUE(area.contains(tp));
      }
      EXPECT_FALSE(probe(fake_tp(next + 1000)));
      EXPECT_LE(nonzero(), 192u);
    }
  }
  EXPECT_EQ(area.keys().size(), live.size());
}

TEST_F(AreaTest, RemovedSlotsEmptyFromTheEndOfAChain) {
  TransitionArea area(memory_, layout_, getpid());
  area.initialize({}, Universe::Old, Universe::Old);
  // Three keys with the same start slot: a chain.
  std::vector<uint64_t> chain;
  uint32_t want = graft_transition_slot(fake_tp(1), layout_.capacity);
  for (uint64_t n = 1; chain.size() < 3; ++n)
    if (graft_transition_slot(fake_tp(n), layout_.capacity) == want) chain.push_back(fake_tp(n));
  for (uint64_t tp : chain) area.insert(tp, Universe::New, Universe::Old);
  EXPECT_EQ(nonzero(), 3u);
  area.remove(chain[1]);  // in the middle: marked, the last one still found through it
  EXPECT_EQ(nonzero(), 3u);
  EXPECT_TRUE(probe(chain[2]));
  EXPECT_FALSE(probe(chain[1]));
  area.remove(chain[2]);  // the end: it and the marked one before it empty
  EXPECT_EQ(nonzero(), 1u);
  EXPECT_TRUE(probe(chain[0]));
  area.insert(chain[2], Universe::Old, Universe::Old);
  EXPECT_EQ(probe(chain[2]), static_cast<uint8_t>(Universe::Old));
}

}  // namespace
}  // namespace graft
