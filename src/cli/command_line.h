// graft's command line: every subcommand with its options and the function
// it runs. main() calls run_command_line() after its own checks.
#pragma once

namespace graft::cli {

int run_command_line(int argc, char** argv);

}  // namespace graft::cli
