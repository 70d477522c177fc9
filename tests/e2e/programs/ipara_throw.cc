// ipara_throw.cc: caller() keeps b * c + a in call-clobbered registers across
// its call to small(), which GCC knows touches only eax and cannot throw
// (-fipa-ra). A replacement of small() that throws goes through its entry
// thunk, caller() (no handler there) and is caught in handle().
// Commands (see serve.h):
//   call N   caller(N, 2, 3), or "caught: WHAT" if it threw
#include <stdexcept>
#include <string>

#include "serve.h"

volatile int k = 5;

__attribute__((noinline)) int small(int x) { return x * k + 1; }

__attribute__((noinline)) int caller(int a, int b, int c) {
  int keep = b * c + a;  // live across the call
  int r = small(a);
  return r + keep * k;
}

int (*volatile caller_ptr)(int, int, int) = caller;

static int handle(const char* cmd, char* reply, size_t n) {
  if (strncmp(cmd, "call ", 5) != 0) return 0;
  try {
    snprintf(reply, n, "%d", caller_ptr(std::stoi(cmd + 5), 2, 3));
  } catch (const std::exception& e) {
    snprintf(reply, n, "caught: %s", e.what());
  }
  return 1;
}

int main() {
  serve(handle);
  return 0;
}
