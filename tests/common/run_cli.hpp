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

// ---- Child processes with their own environment (kill/resume and multi-rank tests) ----
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

extern char** environ;

namespace fusellm::test {

struct Exit {
  bool killed = false;  // ended by a signal
  int code = -1;        // exit code, or the signal number when killed
  std::string output;   // stdout + stderr
};

// Starts the CLI with `args` and extra `env` entries ("NAME=value"); launcher variables and test hooks of
// the test's own environment are removed first so every child starts from the same state. Output → `log`.
inline pid_t spawn_cli(const std::vector<std::string>& args, const std::vector<std::string>& env,
                       const std::filesystem::path& log) {
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var(*e), name = var.substr(0, var.find('='));
    if (name == "RANK" || name == "WORLD_SIZE" || name == "LOCAL_RANK" || name == "MASTER_ADDR" ||
        name == "MASTER_PORT" || name.rfind("SLURM_", 0) == 0 || name.rfind("OMPI_COMM_WORLD", 0) == 0 ||
        name.rfind("FUSELLM_TEST_", 0) == 0 || name.rfind("FUSELLM_TRAIN_", 0) == 0)
      continue;
    envs.push_back(var);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<std::string> argv_s = {cli_path()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

inline Exit wait_cli(pid_t pid, const std::filesystem::path& log) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  Exit e;
  e.killed = WIFSIGNALED(status);
  e.code = e.killed ? WTERMSIG(status) : WEXITSTATUS(status);
  std::ifstream in(log, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  e.output = buf.str();
  return e;
}

inline Exit run_cli_env(const std::vector<std::string>& args, const std::vector<std::string>& env,
                        const std::filesystem::path& log) {
  return wait_cli(spawn_cli(args, env, log), log);
}

}  // namespace fusellm::test
