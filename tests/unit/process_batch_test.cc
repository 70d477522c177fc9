// loader/process_batch.h: many processes at once, bounded, results in order;
// and what makes it possible in the tracer: each thread's waits and timers
// concern its own tracees only (process/tracer.cc, process/thread_alarm.h).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/error.h"
#include "loader/process_batch.h"
#include "process/tracer.h"

namespace graft {
namespace {

using namespace std::chrono_literals;

std::vector<pid_t> some_pids(int n) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) pids.push_back(1000 + i);
  return pids;
}

TEST(ProcessBatch, ResultsAndReportsFollowTheOrderOfThePids) {
  auto pids = some_pids(12);
  std::vector<pid_t> reported;
  auto results = run_process_batch(
      pids, 4,
      [](pid_t pid) {
        // The first ones take longest: they finish last.
        std::this_thread::sleep_for(std::chrono::milliseconds(2 * (1012 - pid)));
        OperationResult r;
        r.pid = pid;
        r.ok = true;
        return r;
      },
      [&](const OperationResult& r) { reported.push_back(r.pid); });
  ASSERT_EQ(results.size(), pids.size());
  for (size_t i = 0; i < pids.size(); ++i) EXPECT_EQ(results[i].pid, pids[i]);
  EXPECT_EQ(reported, pids);
}

TEST(ProcessBatch, RunsAtMostJobsAtOnceAndReallyInParallel) {
  std::atomic<int> running{0}, most{0};
  auto results = run_process_batch(some_pids(16), 3, [&](pid_t pid) {
    int now = ++running;
    for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {
    }
    std::this_thread::sleep_for(20ms);
    --running;
    OperationResult r;
    r.pid = pid;
    r.ok = true;
    return r;
  });
  EXPECT_EQ(results.size(), 16u);
  EXPECT_EQ(most.load(), 3);
}

TEST(ProcessBatch, OneFailureNeverStopsTheOthers) {
  auto results = run_process_batch(some_pids(8), 2, [&](pid_t pid) -> OperationResult {
    if (pid == 1002) throw Error("process 1002 exited", ErrorCode::no_such_process);
    if (pid == 1005) throw std::runtime_error("boom");
    OperationResult r;
    r.pid = pid;
    r.ok = true;
    return r;
  });
  ASSERT_EQ(results.size(), 8u);
  for (const auto& r : results) {
    EXPECT_EQ(r.ok, r.pid != 1002 && r.pid != 1005) << r.pid;
    if (r.pid == 1002) {
      EXPECT_EQ(r.error, "process 1002 exited");
      EXPECT_EQ(r.error_code, ErrorCode::no_such_process);
    }
    if (r.pid == 1005) {
      EXPECT_EQ(r.error, "boom");
    }
  }
}

TEST(ProcessBatch, OneJobRunsOnTheCallingThread) {
  auto caller = std::this_thread::get_id();
  run_process_batch(some_pids(3), 1, [&](pid_t pid) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    OperationResult r;
    r.pid = pid;
    return r;
  });
  EXPECT_GE(default_jobs(), 2u);
}

// Children that sleep until killed, traced by several threads of this
// process at once. A watchdog kills them after 20 s: a wait that nothing
// ends then ends with an error instead of hanging the test.
struct Sleepers {
  std::vector<pid_t> pids;
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  std::thread watchdog;
  explicit Sleepers(int n) {
    for (int i = 0; i < n; ++i) {
      pid_t pid = fork();
      if (pid == 0)
        for (;;) pause();
      pids.push_back(pid);
    }
    watchdog = std::thread([this] {
      std::unique_lock lock(mutex);
      if (!finished.wait_for(lock, 20s, [this] { return done; }))
        for (pid_t pid : pids) kill(pid, SIGKILL);
    });
  }
  ~Sleepers() {
    {
      std::lock_guard lock(mutex);
      done = true;
    }
    finished.notify_all();
    watchdog.join();
    for (pid_t pid : pids) kill(pid, SIGKILL);
    for (pid_t pid : pids) waitpid(pid, nullptr, 0);
  }
};

// Without __WNOTHREAD, a thread waiting for its tracee's stop takes the
// stops of other threads' tracees too, and they wait for nothing (5 s, then
// "did not stop").
TEST(TracerOnSeveralThreads, EachThreadSeesOnlyItsOwnTraceesStops) {
  Sleepers children(4);
  std::vector<std::string> errors(children.pids.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < children.pids.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        Tracer tracer(children.pids[i]);
        for (int round = 0; round < 200; ++round) {
          tracer.stop_all();
          tracer.resume_all();
        }
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

// With a process-wide alarm, the short timed waits of one thread end (or
// cancel) the long timed wait of another.
TEST(TracerOnSeveralThreads, TimedWaitsKeepTheirOwnTimeout) {
  Sleepers children(2);
  double long_wait_ms = 0;
  std::string error;
  std::thread waiter([&] {
    try {
      Tracer tracer(children.pids[0]);
      auto start = std::chrono::steady_clock::now();
      tracer.poll_events(400000);  // nothing happens in a sleeping child
      long_wait_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  std::thread other([&] {
    try {
      Tracer tracer(children.pids[1]);
      for (int i = 0; i < 100; ++i) tracer.poll_events(3000);
    } catch (const std::exception&) {
    }
  });
  waiter.join();
  other.join();
  EXPECT_EQ(error, "");
  EXPECT_GE(long_wait_ms, 390);
  EXPECT_LT(long_wait_ms, 3000);
}

}  // namespace
}  // namespace graft
