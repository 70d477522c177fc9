#pragma once
#include <functional>

// Instantiated (as scaled<long>) in geometry.cc and meter.cc; the linker
// keeps one copy.
template <typename T>
__attribute__((noinline)) T scaled(T v, T factor) {
  return v * factor;
}

class Meter {
 public:
  explicit Meter(int step) : step_(step) {}
  int next();

 private:
  int step_;
  int total_ = 0;
};

long area(int w, int h);
long perimeter(int w, int h);
int apply_all(int n);
