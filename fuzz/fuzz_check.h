// A property a fuzz target checks on what a parser accepted. A violation is
// a bug of graft even when nothing crashes: abort() so that libFuzzer
// records the input.
#pragma once
#include <cstdio>
#include <cstdlib>

namespace graft::fuzz {

inline void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

}  // namespace graft::fuzz
