// The shadow-variable table of libgraft-rt (src/runtime/shadow.c), linked
// statically: semantics of each call, then many threads on the same and on
// different keys at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "graft/runtime.h"

namespace {

// Ids are per test, so tests never see each other's shadows.
constexpr unsigned long kIdBasic = 0x1001, kIdCtor = 0x1002, kIdAll = 0x1003, kIdAllOther = 0x1004,
                        kIdStress = 0x1005, kIdRace = 0x1006, kIdChurn = 0x1007;

TEST(Shadow, AllocGetFree) {
  int obj;
  EXPECT_EQ(graft_shadow_get(&obj, kIdBasic), nullptr);
  auto* p = static_cast<unsigned char*>(graft_shadow_alloc(&obj, kIdBasic, 40, nullptr, nullptr));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(p[i], 0) << "byte " << i;
  EXPECT_EQ(graft_shadow_get(&obj, kIdBasic), p);
  // A second alloc of the same key fails; another id or object is separate.
  EXPECT_EQ(graft_shadow_alloc(&obj, kIdBasic, 40, nullptr, nullptr), nullptr);
  EXPECT_EQ(graft_shadow_get(&obj, kIdBasic + 100), nullptr);
  EXPECT_EQ(graft_shadow_get_or_alloc(&obj, kIdBasic, 40, nullptr, nullptr), p);
  graft_shadow_free(&obj, kIdBasic, nullptr);
  EXPECT_EQ(graft_shadow_get(&obj, kIdBasic), nullptr);
  graft_shadow_free(&obj, kIdBasic, nullptr);  // no-op
  EXPECT_EQ(graft_rt_abi_version(), GRAFT_RT_ABI_VERSION);
}

int ctor_set(void* obj, void* data, void* arg) {
  *static_cast<void**>(data) = obj;
  return *static_cast<int*>(arg);
}

void* dtor_seen_obj;
void* dtor_seen_data;
void dtor_record(void* obj, void* data) {
  dtor_seen_obj = obj;
  dtor_seen_data = data;
}

TEST(Shadow, CtorVetoAndDtor) {
  int obj;
  int fail = -5;
  EXPECT_EQ(graft_shadow_alloc(&obj, kIdCtor, 8, ctor_set, &fail), nullptr);
  EXPECT_EQ(graft_shadow_get(&obj, kIdCtor), nullptr);
  int ok = 0;
  void* p = graft_shadow_alloc(&obj, kIdCtor, 8, ctor_set, &ok);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*static_cast<void**>(p), &obj);
  graft_shadow_free(&obj, kIdCtor, dtor_record);
  EXPECT_EQ(dtor_seen_obj, &obj);
  EXPECT_EQ(dtor_seen_data, p);
}

std::atomic<int> freed_count;
void count_dtor(void*, void*) { freed_count++; }

TEST(Shadow, FreeAllTakesOnlyItsId) {
  std::vector<long> objs(1000);
  for (auto& o : objs) {
    ASSERT_NE(graft_shadow_alloc(&o, kIdAll, 16, nullptr, nullptr), nullptr);
    ASSERT_NE(graft_shadow_alloc(&o, kIdAllOther, 16, nullptr, nullptr), nullptr);
  }
  freed_count = 0;
  graft_shadow_free_all(kIdAll, count_dtor);
  EXPECT_EQ(freed_count.load(), 1000);
  for (auto& o : objs) {
    EXPECT_EQ(graft_shadow_get(&o, kIdAll), nullptr);
    EXPECT_NE(graft_shadow_get(&o, kIdAllOther), nullptr);
  }
  graft_shadow_free_all(kIdAllOther, nullptr);
  for (auto& o : objs) EXPECT_EQ(graft_shadow_get(&o, kIdAllOther), nullptr);
}

std::atomic<int> ctor_runs;
int counting_ctor(void*, void* data, void*) {
  ctor_runs++;
  *static_cast<long*>(data) = 42;
  return 0;
}

// Every thread races for the same keys: each key gets exactly one shadow,
// its ctor runs once, and everybody sees the same pointer.
TEST(Shadow, GetOrAllocRaceOnSameKeys) {
  constexpr int kThreads = 8, kKeys = 2000;
  std::vector<long> objs(kKeys);
  std::vector<std::vector<void*>> seen(kThreads, std::vector<void*>(kKeys));
  ctor_runs = 0;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      while (!go) std::this_thread::yield();
      for (int k = 0; k < kKeys; ++k) {
        int i = (k * 7 + t * 131) % kKeys;  // each thread in its own order
        seen[t][i] = graft_shadow_get_or_alloc(&objs[i], kIdRace, sizeof(long), counting_ctor, nullptr);
      }
    });
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(ctor_runs.load(), kKeys);
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_NE(seen[0][k], nullptr);
    EXPECT_EQ(*static_cast<long*>(seen[0][k]), 42);
    for (int t = 1; t < kThreads; ++t) ASSERT_EQ(seen[t][k], seen[0][k]) << "key " << k;
  }
  graft_shadow_free_all(kIdRace, nullptr);
}

// Each thread owns a set of keys and churns through alloc / get / free on
// them while the others do the same on theirs and on a shared set.
TEST(Shadow, StressOwnAndSharedKeys) {
  constexpr int kThreads = 8, kOwn = 500, kRounds = 150, kShared = 64;
  std::vector<std::vector<long>> own(kThreads, std::vector<long>(kOwn));
  std::vector<long> shared(kShared);
  std::atomic<int> errors{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      while (!go) std::this_thread::yield();
      for (int r = 0; r < kRounds; ++r) {
        for (int i = 0; i < kOwn; ++i) {
          auto* p = static_cast<long*>(graft_shadow_alloc(&own[t][i], kIdStress, sizeof(long) * 2, nullptr, nullptr));
          if (!p) { errors++; continue; }
          p[0] = t;
          p[1] = i + r;
        }
        for (int i = 0; i < kOwn; ++i) {
          auto* p = static_cast<long*>(graft_shadow_get(&own[t][i], kIdStress));
          if (!p || p[0] != t || p[1] != i + r) errors++;
        }
        // The shared keys: get_or_alloc and free from everybody at once.
        for (int i = 0; i < kShared; ++i) {
          auto* p = static_cast<std::atomic<long>*>(
              graft_shadow_get_or_alloc(&shared[i], kIdChurn, sizeof(long), nullptr, nullptr));
          if (!p) errors++;
          if ((i + t + r) % 5 == 0) graft_shadow_free(&shared[i], kIdChurn, nullptr);
        }
        for (int i = 0; i < kOwn; ++i) graft_shadow_free(&own[t][i], kIdStress, nullptr);
        for (int i = 0; i < kOwn; ++i)
          if (graft_shadow_get(&own[t][i], kIdStress)) errors++;
      }
    });
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  graft_shadow_free_all(kIdChurn, nullptr);
  for (auto& o : shared) EXPECT_EQ(graft_shadow_get(&o, kIdChurn), nullptr);
}

}  // namespace
