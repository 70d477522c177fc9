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
  std::vector<std::string> run = {real_compiler(cxx)};
  run.insert(run.end(), args.begin(), args.end());
  if (records) run.insert(run.end(), differ_compile_flags().begin(), differ_compile_flags().end());
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
    r.argv = run;
    try {
      append_compile_record(log, r);
    } catch (const Error& e) {
      std::fprintf(stderr, "graft compiler wrapper: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}

void append_compile_record(const std::string& log, const CompileRecord& r) {
  nlohmann::json j = {{"cwd", r.cwd}, {"object", r.object}, {"source", r.source},
                      {"language", r.language}, {"argv", r.argv}};
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
  std::string text = read_text_file(path);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      CompileRecord r;
      r.cwd = j.at("cwd");
      r.object = j.at("object");
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
