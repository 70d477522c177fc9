#include "common/error.h"

#include <cstring>

namespace graft {

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace graft
