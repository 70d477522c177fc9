#include "common/fault_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>

namespace graft {

namespace {

struct Fault {
  std::string name;
  long nth = 1;
};

const Fault* configured() {
  static const Fault* fault = [] () -> const Fault* {
    const char* spec = std::getenv("GRAFT_FAULT");
    if (!spec || !*spec) return nullptr;
    auto* f = new Fault;
    const char* colon = std::strchr(spec, ':');
    f->name.assign(spec, colon ? static_cast<size_t>(colon - spec) : std::strlen(spec));
    if (colon) f->nth = std::max(1L, std::strtol(colon + 1, nullptr, 10));
    return f;
  }();
  return fault;
}

}  // namespace

void fault_point(const char* name) {
  const Fault* f = configured();
  if (!f || f->name != name) return;
  static std::atomic<long> passed{0};
  if (++passed == f->nth) kill(getpid(), SIGKILL);
}

}  // namespace graft
