#include "loader/process_batch.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace graft {

namespace {

std::vector<int> allowed_cpus() {
  std::vector<int> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

// An operation that threw: the process's failure, never the batch's.
OperationResult run_one(pid_t pid, const ProcessOperation& operation) {
  try {
    return operation(pid);
  } catch (const std::exception& e) {
    OperationResult r;
    r.pid = pid;
    r.error = e.what();
    r.error_code = error_code_of(e);
    return r;
  }
}

}  // namespace

unsigned default_jobs() { return 2 * static_cast<unsigned>(std::max<size_t>(allowed_cpus().size(), 1)); }

void run_bounded(size_t count, unsigned jobs, const std::function<void(size_t)>& work,
                 const std::function<void(size_t)>& in_order) {
  if (jobs == 0) jobs = default_jobs();
  jobs = static_cast<unsigned>(std::min<size_t>(jobs, count));
  if (jobs <= 1) {
    for (size_t i = 0; i < count; ++i) {
      work(i);
      if (in_order) in_order(i);
    }
    return;
  }
  std::atomic<size_t> next{0};
  std::mutex reporting;
  std::vector<bool> finished(count, false);
  std::vector<std::exception_ptr> failures(count);
  size_t reported = 0;  // a prefix of the work, handed to in_order
  auto report_ready = [&](size_t i) {
    std::lock_guard lock(reporting);
    finished[i] = true;
    for (; reported < count && finished[reported]; ++reported)
      if (in_order && !failures[reported]) {
        try {
          in_order(reported);
        } catch (...) {
          failures[reported] = std::current_exception();
        }
      }
  };
  // Each worker stays on one CPU, spread over those graft may use: the
  // tracing thread an operation starts stays on its caller's CPU
  // (process/tracing_thread.cc), and left to chance, several could share
  // one CPU while another idles.
  std::vector<int> cpus = allowed_cpus();
  std::vector<std::thread> workers;
  workers.reserve(jobs);
  for (unsigned w = 0; w < jobs; ++w)
    workers.emplace_back([&, w] {
      if (!cpus.empty()) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[w % cpus.size()], &one);
        sched_setaffinity(0, sizeof one, &one);
      }
      for (size_t i; (i = next.fetch_add(1)) < count;) {
        try {
          work(i);
        } catch (...) {
          failures[i] = std::current_exception();
        }
        report_ready(i);
      }
    });
  for (auto& t : workers) t.join();
  for (auto& f : failures)
    if (f) std::rethrow_exception(f);
}

std::vector<OperationResult> run_process_batch(const std::vector<pid_t>& pids, unsigned jobs,
                                               const ProcessOperation& operation,
                                               const ResultCallback& on_result) {
  std::vector<OperationResult> results(pids.size());
  run_bounded(
      pids.size(), jobs, [&](size_t i) { results[i] = run_one(pids[i], operation); },
      [&](size_t i) {
        if (on_result) on_result(results[i]);
      });
  return results;
}

}  // namespace graft
