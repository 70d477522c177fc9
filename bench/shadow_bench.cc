// Cost of the shadow-variable calls of libgraft-rt (src/runtime/shadow.c),
// linked statically: a hit, a miss, get_or_alloc on an existing shadow, and
// an alloc + free pair; from 1 thread and from 8 threads on their own
// objects and on shared ones.
//
//   build/bench/graft_shadow_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <vector>

#include "graft/runtime.h"

namespace {

constexpr unsigned long kId = 77;
constexpr int kObjects = 4096;
std::vector<long> objects(kObjects);

void populate() {
  for (auto& o : objects) graft_shadow_get_or_alloc(&o, kId, 16, nullptr, nullptr);
}

void BM_GetHit(benchmark::State& state) {
  if (state.thread_index() == 0) populate();
  // Threads spread over all objects, or all on the same 8 (contended).
  int span = state.range(0) ? 8 : kObjects;
  int i = state.thread_index() * 97;
  for (auto _ : state) {
    benchmark::DoNotOptimize(graft_shadow_get(&objects[i % span], kId));
    ++i;
  }
}
BENCHMARK(BM_GetHit)->Arg(0)->Arg(1)->ThreadRange(1, 8)->UseRealTime();

void BM_GetMiss(benchmark::State& state) {
  long other[64];
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(graft_shadow_get(&other[i++ & 63], kId + 1));
}
BENCHMARK(BM_GetMiss)->ThreadRange(1, 8)->UseRealTime();

void BM_GetOrAllocExisting(benchmark::State& state) {
  if (state.thread_index() == 0) populate();
  int i = state.thread_index() * 97;
  for (auto _ : state)
    benchmark::DoNotOptimize(graft_shadow_get_or_alloc(&objects[i++ % kObjects], kId, 16, nullptr, nullptr));
}
BENCHMARK(BM_GetOrAllocExisting)->ThreadRange(1, 8)->UseRealTime();

void BM_AllocFree(benchmark::State& state) {
  std::vector<long> mine(256);
  int i = 0;
  for (auto _ : state) {
    long* o = &mine[i++ & 255];
    benchmark::DoNotOptimize(graft_shadow_alloc(o, kId + 2, 32, nullptr, nullptr));
    graft_shadow_free(o, kId + 2, nullptr);
  }
}
BENCHMARK(BM_AllocFree)->ThreadRange(1, 8)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
