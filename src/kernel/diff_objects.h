// Which kernel objects a diff needs compiled: each changed C file FILE.c
// is compiled alone as FILE.o (Kbuild's single-object target, `make
// FILE.o`, in its directory's context). A changed header reaches the
// objects that include it: header_users.h finds them. What graft cannot map to objects
// is refused with the reason; what never reaches the kernel's code
// (documentation, tools, scripts, Debian's packaging) is left aside.
#pragma once
#include <string>
#include <vector>

#include "differ/unified_diff.h"

namespace graft::kernel {

struct KernelObject {
  std::string source;  // relative to the tree, e.g. fs/proc/cmdline.c
  std::string object;  // fs/proc/cmdline.o
};

struct DiffObjects {
  std::vector<KernelObject> objects;
  std::vector<std::string> refusals;  // one sentence per file
  std::vector<std::string> ignored;   // files that do not reach the kernel
  std::vector<std::string> headers;   // changed headers (.h), relative to the tree
};

DiffObjects objects_for_diff(const std::vector<DiffFile>& files);

}  // namespace graft::kernel
