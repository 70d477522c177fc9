// shapes.cc: a C++ target; Circle::area() is virtual and only called through
// a Shape pointer (the objects are made at run time from a volatile input, so
// the compiler cannot tell their type).
// Commands (see serve.h):
//   call    "circle-area square-area" of the shapes, through Shape*: "12.00 4.00"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "serve.h"

struct Shape {
  virtual ~Shape() = default;
  virtual double area() const = 0;
};

struct Circle : Shape {
  explicit Circle(double r) : r(r) {}
  __attribute__((noinline)) double area() const override { return 3.0 * r * r; }
  double r;
};

struct Square : Shape {
  explicit Square(double s) : s(s) {}
  __attribute__((noinline)) double area() const override { return s * s; }
  double s;
};

volatile int kind_of_first = 0;
volatile double size = 2.0;

__attribute__((noinline)) std::unique_ptr<Shape> make(int kind) {
  if (kind == 0) return std::make_unique<Circle>(size);
  return std::make_unique<Square>(size);
}

__attribute__((noinline)) double area_of(const Shape *s) { return s->area(); }

static std::unique_ptr<Shape> shapes[2];

static int handle(const char *cmd, char *reply, size_t n) {
  if (std::strcmp(cmd, "call") != 0) return 0;
  std::snprintf(reply, n, "%.2f %.2f", area_of(shapes[0].get()), area_of(shapes[1].get()));
  return 1;
}

int main() {
  shapes[0] = make(kind_of_first);
  shapes[1] = make(kind_of_first + 1);
  serve(handle);
  return 0;
}
