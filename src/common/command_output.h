// The output of a short helper command (git, dpkg-query, apt-cache), read
// without a shell.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace graft {

// Runs argv in `dir` with stdin and stderr on /dev/null: its stdout, or
// nullopt if it could not run or did not exit with 0.
std::optional<std::string> command_output(const std::string& dir,
                                          const std::vector<std::string>& argv);

}  // namespace graft
