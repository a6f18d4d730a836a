#pragma once
// Executing generated programs the way MultiPL-E's evaluators (bigcode-evaluation-harness's
// custom_metrics/multiple_metrics) do: per language the compile and run commands, their time-outs and
// how an outcome becomes a status (OK, SyntaxError, Exception, Timeout) — here inside the sandbox. Also
// the toolchain check (`fusellm eval --check-toolchains`) and the unbiased pass@k estimator.
#include <optional>
#include <string>
#include <vector>

#include "fusellm/eval/sandbox.hpp"

namespace fusellm::eval {

struct CodeLanguage {
  std::string id;         // MultiPL-E's: cpp, go, java, js, php, py, r, rb, rs, ts
  std::string name;       // C++, Go, ...
  std::vector<std::string> tools;  // executables it needs (in /usr/bin)
  std::string debian_packages;     // what `scripts/setup.sh --code-eval` installs for it
};
// The ten languages of the paper's Table 3, in MultiPL-E's order.
const std::vector<CodeLanguage>& code_languages();
// The language of that id, or an Error listing the known ones.
const CodeLanguage& code_language(const std::string& id);

// Behaviours of the harness as it was when the paper was evaluated (eval-protocol.md §4.6).
struct HarnessCompat {
  // Go programs written to a `.go` file, not `_test.go`: `go test` finds no tests and passes whatever builds.
  bool go_without_tests = false;
};

// The sandbox run of one program (prompt + completion + "\n" + tests) in that language.
SandboxSpec program_spec(const CodeLanguage& language, const std::string& program, const HarnessCompat& compat);

struct ProgramVerdict {
  std::string status;   // OK, SyntaxError, Exception, Timeout
  int exit_code = -1;   // of the step that decided (the test run, or the compiler when it failed)
  std::string output;   // the first 2 KB of stdout + stderr
  double wall_s = 0;
  bool passed() const { return status == "OK" && exit_code == 0; }  // single_experiment_pass_k's test
};
// The harness's status for a finished run. A sandbox that could not start is an Error (never a silent 0).
ProgramVerdict program_verdict(const CodeLanguage& language, const SandboxResult& result, const HarnessCompat& compat);

struct ToolchainStatus {
  std::string language;
  bool available = false;
  std::string version;  // the tools' version lines, as they report them inside the sandbox
  std::string problem;  // why not available: the missing tool or file, the packages to install
};
// Every language's toolchain, probed inside the sandbox (a toolchain that only works outside is missing).
std::vector<ToolchainStatus> check_toolchains();
// One language's; cached per process.
const ToolchainStatus& toolchain_status(const std::string& language);

// The unbiased estimator of pass@k from n samples of which c passed (Chen et al. 2021; the harness's
// `estimator`): 1 − C(n−c, k)/C(n, k), computed as a product; 1 when n − c < k.
double pass_at_k(int64_t n, int64_t c, int64_t k);

}  // namespace fusellm::eval
