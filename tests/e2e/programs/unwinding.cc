// unwinding.cc: a C++ target whose threads sit inside a replaced function,
// dwell(), while graft points its return at an exit stub, and then pass the
// stub without returning through it: an exception thrown to the caller, a
// backtrace taken below it (from a callee, from a signal handler), a
// cancellation (returns_unwind_*.sh). Built with -rdynamic, so that
// dladdr() names the callers.
//
// dwell(ms, how) sleeps ms milliseconds, then by `how': returns 1 (the
// patch: 2); throws std::runtime_error("1") (the patch: "2"); or calls
// trace_below(), whose backtrace() must name dwell's real caller, and
// returns 1. The old dwell() counts the calls it leaves with its return
// address leading elsewhere than to its caller (to a stub): `redirected'.
//
// Commands (see serve.h):
//   thrower     a thread: try { dwell(3000, throw) } in thrower_caller(),
//               then 50 ms spinning outside; answers its tid
//   tracer      a thread: dwell(3000, trace) from tracer_caller(), then
//               50 ms outside
//   canceller   a thread: in canceller_caller(), a cleanup handler and a
//               destructor around dwell(3000, return) calls
//   entered N   waits (10 s at most) until dwell() was entered N times
//   redirected  calls of the old dwell() that left with a redirected return
//   led         1 if the thread now in the old dwell() has its return
//               redirected, else 0
//   stats       "caught C bad B traced T truncated U": B counts wrong
//               results and exceptions of the wrong kind; U backtraces that
//               did not name the caller
//   signal      SIGUSR1 to the tracer; its handler's backtrace: "named" or
//               "truncated"
//   cancel      cancels the canceller and joins it: "cancelled C cleanups N"
//   call        dwell(0, return) on the main thread: 1 old, 2 new
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "serve.h"

enum How { kReturn = 0, kThrow = 1, kTrace = 2 };

std::atomic<int> entered;
static std::atomic<int> redirected, caught, bad, traced, truncated, cleanups;
static std::atomic<const void*> expected_caller;  // what trace_below() must find
static std::atomic<int> signal_answer;            // 0 pending, 1 named, 2 truncated
static pthread_t tracer_thread, canceller_thread;
// The return address slot of the call of the old dwell() in progress.
static std::atomic<volatile uintptr_t*> live_slot;
static std::atomic<uintptr_t> live_caller;

static void sleep_ms(int ms) {
  timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static long long now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void spin_ms(int ms) {
  long long until = now_ns() + ms * 1000000LL;
  while (now_ns() < until) {
  }
}

// Whether a backtrace from here names `caller' (dladdr of each return
// address minus one, the call instruction).
static bool backtrace_names(const void* caller) {
  void* frames[64];
  int n = backtrace(frames, 64);
  for (int i = 0; i < n; ++i) {
    Dl_info info;
    if (dladdr(static_cast<char*>(frames[i]) - 1, &info) && info.dli_saddr == caller) return true;
  }
  return false;
}

extern "C" __attribute__((noinline)) void trace_below() {
  if (backtrace_names(expected_caller.load()))
    ++traced;
  else
    ++truncated;
}

extern "C" __attribute__((noinline)) int dwell(int ms, int how) {
  ++entered;
  auto* slot = reinterpret_cast<volatile uintptr_t*>(static_cast<char*>(__builtin_frame_address(0)) + 8);
  const uintptr_t caller = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  live_caller = caller;
  live_slot = slot;
  sleep_ms(ms);
  live_slot = nullptr;
  if (*slot != caller) ++redirected;
  if (how == kThrow) throw std::runtime_error("1");
  if (how == kTrace) trace_below();
  return 1;
}

extern "C" __attribute__((noinline)) void thrower_caller() {
  try {
    dwell(3000, kThrow);
    ++bad;  // it always throws
  } catch (const std::runtime_error& e) {
    if (std::strcmp(e.what(), "1") != 0 && std::strcmp(e.what(), "2") != 0) ++bad;
    ++caught;
  } catch (...) {
    ++bad;
  }
}

extern "C" __attribute__((noinline)) void tracer_caller() {
  int r = dwell(3000, kTrace);
  if (r != 1 && r != 2) ++bad;
}

static void on_usr1(int) { signal_answer = backtrace_names(reinterpret_cast<const void*>(&tracer_caller)) ? 1 : 2; }

struct Counted {
  ~Counted() { ++cleanups; }
};
static void cleanup_handler(void*) { ++cleanups; }

extern "C" __attribute__((noinline)) void canceller_caller() {
  Counted counted;
  pthread_cleanup_push(cleanup_handler, nullptr);
  for (;;) {
    int r = dwell(3000, kReturn);
    if (r != 1 && r != 2) ++bad;
  }
  pthread_cleanup_pop(0);
}

static void* thrower(void*) {
  // Its first exception creates the thread's malloc arena: before the
  // test counts the process's mappings.
  try {
    throw std::runtime_error("warm-up");
  } catch (const std::exception&) {
  }
  for (;;) {
    thrower_caller();
    spin_ms(50);
  }
  return nullptr;
}

static void* tracer(void*) {
  expected_caller = reinterpret_cast<const void*>(&tracer_caller);
  for (;;) {
    tracer_caller();
    spin_ms(50);
  }
  return nullptr;
}

static void* canceller(void*) {
  canceller_caller();
  return nullptr;
}

static std::atomic<int> started_tid;
static void* (*start_fn)(void*);
static void* starter(void*) {
  started_tid = serve_gettid();
  return start_fn(nullptr);
}

static pthread_t start(void* (*fn)(void*)) {
  pthread_t t;
  started_tid = 0;
  start_fn = fn;
  pthread_create(&t, nullptr, starter, nullptr);
  while (!started_tid) sleep_ms(1);
  return t;
}

static int handle(const char* cmd, char* reply, size_t n) {
  int k;
  if (std::strcmp(cmd, "thrower") == 0) {
    start(thrower);
    std::snprintf(reply, n, "%d", started_tid.load());
  } else if (std::strcmp(cmd, "tracer") == 0) {
    tracer_thread = start(tracer);
    std::snprintf(reply, n, "%d", started_tid.load());
  } else if (std::strcmp(cmd, "canceller") == 0) {
    canceller_thread = start(canceller);
    std::snprintf(reply, n, "%d", started_tid.load());
  } else if (std::sscanf(cmd, "entered %d", &k) == 1) {
    for (int i = 0; i < 10000 && entered < k; i++) sleep_ms(1);
    std::snprintf(reply, n, "%d", entered.load());
  } else if (std::strcmp(cmd, "redirected") == 0) {
    std::snprintf(reply, n, "%d", redirected.load());
  } else if (std::strcmp(cmd, "led") == 0) {
    volatile uintptr_t* slot = live_slot;
    std::snprintf(reply, n, "%d", slot && *slot != live_caller ? 1 : 0);
  } else if (std::strcmp(cmd, "stats") == 0) {
    std::snprintf(reply, n, "caught %d bad %d traced %d truncated %d", caught.load(), bad.load(), traced.load(),
                  truncated.load());
  } else if (std::strcmp(cmd, "signal") == 0) {
    signal_answer = 0;
    pthread_kill(tracer_thread, SIGUSR1);
    for (int i = 0; i < 5000 && !signal_answer; i++) sleep_ms(1);
    std::snprintf(reply, n, "%s", signal_answer == 1 ? "named" : signal_answer == 2 ? "truncated" : "no answer");
  } else if (std::strcmp(cmd, "cancel") == 0) {
    void* ret = nullptr;
    pthread_cancel(canceller_thread);
    pthread_join(canceller_thread, &ret);
    std::snprintf(reply, n, "cancelled %d cleanups %d", ret == PTHREAD_CANCELED ? 1 : 0, cleanups.load());
  } else if (std::strcmp(cmd, "call") == 0) {
    std::snprintf(reply, n, "%d", dwell(0, kReturn));
  } else {
    return 0;
  }
  return 1;
}

int main() {
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, nullptr);
  // backtrace() loads libgcc_s on first use: not while a handler runs.
  void* warm[1];
  backtrace(warm, 1);
  watch("dwell", reinterpret_cast<const void*>(&dwell));
  serve(handle);
  return 0;
}
