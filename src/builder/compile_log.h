// The compiler wrapper of `graft build --from-diff` and the log it writes.
//
// The differ needs every object of the build compiled with one section per
// function and per variable (so that a function's bytes and relocations can
// be compared on their own) and with DWARF (inlining and struct layouts).
// GCC promises that neither changes the generated code; the builder checks
// it anyway against the running target's bytes.
//
// The build runs with CC/CXX (and cc, gcc, c++, g++ on PATH) pointing to
// links named graft-cc / graft-c++ to the graft binary. main() sees that
// name, runs the real compiler ($GRAFT_REAL_CC / $GRAFT_REAL_CXX) with the
// extra flags and appends one JSON line per object to $GRAFT_COMPILE_LOG.
//
// With $GRAFT_SIDE_OBJECTS set to a folder, the build's own compilation runs
// exactly as asked, so that what it links is the binary the recipe makes
// (bit for bit, for a reproducible package), and each unit is compiled once
// more with the extra flags into an object in that folder, which is the one
// recorded for comparison.
#pragma once
#include <string>
#include <vector>

namespace graft {

struct CompileRecord {
  std::string cwd;
  std::string object;    // absolute: the build's output
  std::string compared;  // absolute: the object to compare (== object, or a side object)
  std::string source;    // absolute
  std::string language;  // "c" or "c++"
  std::vector<std::string> argv;  // compiles `compared`, extra flags included
};

// Flags added to every compilation.
const std::vector<std::string>& differ_compile_flags();

// If `argv0` names the wrapper (and the environment says where to log),
// runs it and returns its exit status; otherwise -1.
int maybe_run_compiler_wrapper(int argc, char** argv);

std::vector<CompileRecord> read_compile_log(const std::string& path);
void append_compile_record(const std::string& log, const CompileRecord& record);

// The C or C++ language of a source file by its extension; "" if neither.
std::string source_language(const std::string& path);

}  // namespace graft
