#include "builder/compile_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "builder/compiler.h"
#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"

namespace graft {

namespace fs = std::filesystem;

const std::vector<std::string>& differ_compile_flags() {
  static const std::vector<std::string> flags = {"-ffunction-sections", "-fdata-sections", "-g"};
  return flags;
}

std::string source_language(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  if (ext == ".c") return "c";
  if (ext == ".cc" || ext == ".cpp" || ext == ".cxx" || ext == ".C" || ext == ".c++") return "c++";
  return "";
}

namespace {

// GCC options whose value is the next argument.
bool takes_value(const std::string& a) {
  static const std::set<std::string> opts = {
      "-o", "-I", "-D", "-U", "-include", "-imacros", "-isystem", "-idirafter", "-iquote",
      "-iprefix", "-MF", "-MT", "-MQ", "-x", "-L", "-l", "-Xlinker", "-Xassembler",
      "-Xpreprocessor", "-aux-info", "--param", "-specs", "-T", "-u", "-z"};
  return opts.count(a) > 0;
}

std::string absolute(const std::string& cwd, const std::string& p) {
  return (fs::path(p).is_absolute() ? fs::path(p) : fs::path(cwd) / p).lexically_normal().string();
}

struct CommandLine {
  bool compile_only = false;  // -c
  bool other_mode = false;    // -E, -S, -M, -MM: no object
  std::string output;
  std::vector<std::string> sources;
};

CommandLine parse(const std::vector<std::string>& args) {
  CommandLine c;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c") c.compile_only = true;
    else if (a == "-E" || a == "-S" || a == "-M" || a == "-MM") c.other_mode = true;
    else if (a == "-o" && i + 1 < args.size()) c.output = args[++i];
    else if (takes_value(a)) ++i;
    else if (!a.empty() && a[0] != '-' && !source_language(a).empty()) c.sources.push_back(a);
  }
  return c;
}

// The arguments of a compilation of `source` alone into `output`, with the
// differ's flags and without the ones that write make dependencies (the
// build's own compilation writes those).
std::vector<std::string> side_compilation(const std::string& compiler,
                                          const std::vector<std::string>& args,
                                          const CommandLine& line, const std::string& source,
                                          const std::string& output) {
  static const std::set<std::string> drop_with_value = {"-o", "-MF", "-MT", "-MQ"};
  static const std::set<std::string> drop = {"-MD", "-MMD", "-MP"};
  std::set<std::string> sources(line.sources.begin(), line.sources.end());
  std::vector<std::string> out = {compiler};
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (drop_with_value.count(a)) { ++i; continue; }
    if (drop.count(a) || a.rfind("-Wp,-M", 0) == 0 || sources.count(a)) continue;
    if (takes_value(a) && i + 1 < args.size()) {
      out.push_back(a);
      out.push_back(args[++i]);
      continue;
    }
    out.push_back(a);
  }
  out.insert(out.end(), differ_compile_flags().begin(), differ_compile_flags().end());
  out.insert(out.end(), {source, "-o", output});
  return out;
}

std::string real_compiler(bool cxx) {
  const char* env = std::getenv(cxx ? "GRAFT_REAL_CXX" : "GRAFT_REAL_CC");
  return env && *env ? env : (cxx ? "c++" : "cc");
}

}  // namespace

int maybe_run_compiler_wrapper(int argc, char** argv) {
  std::string name = fs::path(argv[0]).filename().string();
  const char* log = std::getenv("GRAFT_COMPILE_LOG");
  bool cxx;
  if (name == "graft-cc" || ((name == "cc" || name == "gcc") && log)) cxx = false;
  else if (name == "graft-c++" || ((name == "c++" || name == "g++") && log)) cxx = true;
  else return -1;

  std::vector<std::string> args(argv + 1, argv + argc);
  CommandLine line = parse(args);
  bool records = line.compile_only && !line.other_mode && !line.sources.empty();
  const char* side_env = std::getenv("GRAFT_SIDE_OBJECTS");
  std::string side_dir = side_env ? side_env : "";
  std::vector<std::string> run = {real_compiler(cxx)};
  run.insert(run.end(), args.begin(), args.end());
  if (records && side_dir.empty())
    run.insert(run.end(), differ_compile_flags().begin(), differ_compile_flags().end());
  int rc = run_command(run);
  if (rc == -1) {
    std::fprintf(stderr, "graft compiler wrapper: cannot run `%s'\n", run[0].c_str());
    return 127;
  }
  if (rc != 0 || !records || !log || !*log) return rc;

  std::string cwd = fs::current_path().string();
  for (const auto& src : line.sources) {
    CompileRecord r;
    r.cwd = cwd;
    r.source = absolute(cwd, src);
    r.language = source_language(src);
    r.object = !line.output.empty() && line.sources.size() == 1
                   ? absolute(cwd, line.output)
                   : absolute(cwd, fs::path(src).stem().string() + ".o");
    r.compared = r.object;
    r.argv = run;
    try {
      if (!side_dir.empty()) {
        std::string id = r.object;
        r.compared = fmt::format("{}/{}-{}", side_dir,
                                 sha256_hex({reinterpret_cast<const uint8_t*>(id.data()), id.size()}).substr(0, 16),
                                 fs::path(r.object).filename().string());
        r.argv = side_compilation(run[0], args, line, src, r.compared);
        int side_rc = run_command(r.argv);
        if (side_rc != 0) {
          std::fprintf(stderr, "graft compiler wrapper: compiling %s again with graft's flags "
                       "failed (exit %d)\n", src.c_str(), side_rc);
          return side_rc == -1 ? 127 : side_rc;
        }
      }
      append_compile_record(log, r);
    } catch (const Error& e) {
      std::fprintf(stderr, "graft compiler wrapper: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}

void append_compile_record(const std::string& log, const CompileRecord& r) {
  nlohmann::json j = {{"cwd", r.cwd}, {"object", r.object}, {"compared", r.compared},
                      {"source", r.source}, {"language", r.language}, {"argv", r.argv}};
  std::string line = j.dump() + "\n";
  // One write(2) with O_APPEND: parallel compilers (make -j) never interleave.
  int fd = open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail("{}: {}", log, errno_text(errno));
  ssize_t n = write(fd, line.data(), line.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(line.size())) fail("{}: {}", log, errno_text(err));
}

std::vector<CompileRecord> read_compile_log(const std::string& path) {
  std::vector<CompileRecord> out;
  if (!fs::exists(path)) return out;
  for (const auto& line : split_lines(read_text_file(path))) {
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      CompileRecord r;
      r.cwd = j.at("cwd");
      r.object = j.at("object");
      r.compared = j.value("compared", r.object);
      r.source = j.at("source");
      r.language = j.at("language");
      r.argv = j.at("argv").get<std::vector<std::string>>();
      out.push_back(std::move(r));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: malformed compile record: {}", path, e.what());
    }
  }
  return out;
}

}  // namespace graft
