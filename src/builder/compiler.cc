#include "builder/compiler.h"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/error.h"

extern char** environ;

namespace graft {

namespace {
bool is_cxx(const std::string& source) {
  for (const char* ext : {".cc", ".cpp", ".cxx", ".C", ".c++"}) {
    std::string e(ext);
    if (source.size() > e.size() && source.compare(source.size() - e.size(), e.size(), e) == 0)
      return true;
  }
  return false;
}

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}
}  // namespace

std::string patch_header_dir() {
  if (const char* env = std::getenv("GRAFT_INCLUDE_DIR")) return env;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string dir(self, n);
    dir = dir.substr(0, dir.rfind('/'));
    if (exists(dir + "/../include/graft/patch.h")) return dir + "/../include";
  }
  if (exists(std::string(GRAFT_SOURCE_INCLUDE_DIR) + "/graft/patch.h"))
    return GRAFT_SOURCE_INCLUDE_DIR;
  return GRAFT_INSTALL_INCLUDE_DIR;
}

int run_command(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void compile_patch_source(const std::string& source, const std::string& object,
                          const std::vector<std::string>& extra_flags) {
  bool cxx = is_cxx(source);
  const char* env = std::getenv(cxx ? "CXX" : "CC");
  std::string compiler = env && *env ? env : (cxx ? "c++" : "cc");
  // -fPIC: the image is placed wherever there is room near the target.
  // Separate sections let the builder keep only what is referenced.
  std::vector<std::string> argv = {compiler, "-c", "-O2", "-g0", "-fPIC", "-fno-common",
                                   "-ffunction-sections", "-fdata-sections",
                                   "-I" + patch_header_dir()};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  argv.insert(argv.end(), {source, "-o", object});
  int rc = run_command(argv);
  if (rc == -1) fail("cannot run the compiler `{}'", compiler);
  if (rc != 0) fail("{}: compilation failed ({} exited with {})", source, compiler, rc);
}

}  // namespace graft
