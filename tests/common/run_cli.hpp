#pragma once
// Runs the built `fusellm` binary as a child process and captures its exit status and output.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "common/test_paths.hpp"

namespace fusellm::test {

struct CliResult {
  int status = -1;     // exit code; -1 when killed by a signal
  std::string output;  // stdout, plus stderr unless separated
};

// `args` is passed through the shell, so quote accordingly. `merge_stderr` = false keeps stdout alone.
inline CliResult run_cli(const std::string& args, bool merge_stderr = true) {
  const std::string command = cli_path() + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* pipe = ::popen(command.c_str(), "r");
  CliResult r;
  if (!pipe) return r;
  std::array<char, 4096> buf;
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0;) r.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace fusellm::test
