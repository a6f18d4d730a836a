#pragma once
// Runs another program (the demo runs `fusellm <subcommand>` for each step) with its output in a log file.
#include <string>
#include <vector>

#include "fusellm/util/fs.hpp"

namespace fusellm::demo {

// Runs argv[0] with argv, stdout and stderr appended to `log` (created with its folders), and waits.
// The child dies with this process (PR_SET_PDEATHSIG): a killed demo leaves no step running behind it.
// Returns the exit status, or 128 + the signal that ended the child. An Error when it cannot start.
int run_logged(const std::vector<std::string>& argv, const fs::path& log);

// The last `lines` lines of a text file (a failed step's log, shown to the user).
std::string tail_lines(const fs::path& file, size_t lines);

// The path of the running executable (/proc/self/exe).
fs::path self_executable();

}  // namespace fusellm::demo
