// Runs a project's build (or any command) in a directory with extra
// environment variables, its output going to a log file.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace graft {

// Returns the exit status (128 + signal when killed; -1 if it could not start).
int run_in_directory(const std::string& dir, const std::vector<std::string>& argv,
                     const std::map<std::string, std::string>& env, const std::string& log);

// Runs argv in `dir` with stdin and stderr on /dev/null: its stdout, or
// nullopt if it could not run or did not exit with 0.
std::optional<std::string> command_output(const std::string& dir,
                                          const std::vector<std::string>& argv);

// The last `lines` lines of a text file, for error messages.
std::string tail_of_file(const std::string& path, size_t lines);

// Absolute path of `program` found on $PATH ("" if none).
std::string find_program(const std::string& program);

}  // namespace graft
