// throwing.cc: a C++ target whose patched function throws. Exceptions pass
// from parse() through its caller outer() to a catch in handle(), and, in
// worker threads, continuously, while graft applies and reverts.
// Commands (see serve.h):
//   call N     parse(N) through outer(): "value V" or "error WHAT"
//   load K     starts K workers calling outer() with values that throw
//   stats      "calls C caught K bad B" over all workers (B: wrong results)
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "serve.h"

__attribute__((noinline)) long parse(long n) {
  if (n < 0) throw std::invalid_argument("negative");
  return n * 2;
}

// Its frame lies between the throw and the catch.
__attribute__((noinline)) long outer(long n) {
  std::string keep = "frame with a destructor";
  long v = parse(n);
  return v + static_cast<long>(keep.size()) - 23;
}

static std::atomic<long> calls, caught, bad;

static void worker(long seed) {
  for (long i = seed;; ++i) {
    long n = (i % 3 == 0) ? -i : i % 1000;
    try {
      long v = outer(n);
      // Old parse: 2n; the patch's: 3n (and it throws for n > 900).
      if (v != 2 * n && v != 3 * n) ++bad;
    } catch (const std::exception& e) {
      if (n >= 0 && n <= 900) ++bad;
      ++caught;
    }
    ++calls;
  }
}

static int handle(const char* cmd, char* reply, size_t size) {
  long n;
  if (std::sscanf(cmd, "call %ld", &n) == 1) {
    try {
      std::snprintf(reply, size, "value %ld", outer(n));
    } catch (const std::exception& e) {
      std::snprintf(reply, size, "error %s", e.what());
    }
    return 1;
  }
  if (std::sscanf(cmd, "load %ld", &n) == 1) {
    for (long k = 0; k < n; ++k) std::thread(worker, k * 7919).detach();
    std::snprintf(reply, size, "started %ld", n);
    return 1;
  }
  if (std::strcmp(cmd, "stats") == 0) {
    std::snprintf(reply, size, "calls %ld caught %ld bad %ld", calls.load(), caught.load(), bad.load());
    return 1;
  }
  return 0;
}

int main() {
  watch("parse", reinterpret_cast<const void*>(&parse));
  serve(handle);
  return 0;
}
