// MultiPL-E's per-language execution (see code_exec.hpp). Commands and time-outs are those of the
// harness's eval_<lang>.py (eval-protocol.md §4.5); each program runs in its own sandbox, compile and run
// as two steps of one sandbox so the binary never leaves it.
#include "fusellm/eval/code_exec.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm::eval {

namespace {

// Debian's javatuples (libjavatuples-java): the jar the harness's image adds for Java's Pair/Triplet.
constexpr const char* kJavatuples = "/usr/share/java/javatuples.jar";

bool contains(const std::string& text, const char* what) { return text.find(what) != std::string::npos; }

// Limits shared by every language; a language's own time-outs come on its steps. The address space is
// per process: the JVM, V8 and Go reserve far more virtual memory than they touch, so they get more.
SandboxLimits base_limits(const std::string& id, double step_timeouts) {
  SandboxLimits l;
  l.wall_s = step_timeouts + 5;   // the steps' own time-outs decide; this only catches the sandbox's start-up
  l.cpu_s = step_timeouts + 5;    // compilers are single-threaded mostly; the wall limit binds first
  l.address_space = (id == "java" || id == "js" || id == "ts" || id == "go") ? (16LL << 30) : (4LL << 30);
  l.processes = 256;              // javac/java and `go test` start dozens of threads
  l.file_size = 64LL << 20;
  l.open_files = 512;
  l.tmpfs_bytes = 512LL << 20;    // Go's build cache lands in the work dir
  l.output_bytes = 1LL << 20;
  l.output_kept = 2048;           // what safe_subprocess keeps
  return l;
}

SandboxStep step(std::vector<std::string> argv, double timeout_s) { return SandboxStep{std::move(argv), timeout_s}; }

// Languages run by one interpreter on the source file: eval_<lang>.py's command and time-out.
struct Interpreted {
  const char* id;
  const char* extension;
  const char* tool;
  double timeout_s;
};
const Interpreted* interpreted(const std::string& id) {
  static const Interpreted table[] = {{"js", "js", "node", 5},   {"php", "php", "php", 15}, {"py", "py", "python3", 15},
                                      {"r", "r", "Rscript", 5}, {"rb", "rb", "ruby", 5}};
  for (const auto& t : table)
    if (id == t.id) return &t;
  return nullptr;
}

// Whether step 0 is a compiler (its failure is a SyntaxError).
bool compiles_first(const std::string& id) { return id == "cpp" || id == "java" || id == "rs" || id == "ts"; }

}  // namespace

const std::vector<CodeLanguage>& code_languages() {
  static const std::vector<CodeLanguage> languages = {
      {"cpp", "C++", {"g++"}, "g++"},
      {"go", "Go", {"go"}, "golang-go"},
      {"java", "Java", {"javac", "java"}, "default-jdk-headless libjavatuples-java"},
      {"js", "JavaScript", {"node"}, "nodejs"},
      {"php", "PHP", {"php"}, "php-cli"},
      {"py", "Python", {"python3"}, "python3"},
      {"r", "R", {"Rscript"}, "r-base-core"},
      {"rb", "Ruby", {"ruby"}, "ruby"},
      {"rs", "Rust", {"rustc"}, "rustc"},
      {"ts", "TypeScript", {"tsc", "node"}, "node-typescript nodejs"},
  };
  return languages;
}

const CodeLanguage& code_language(const std::string& id) {
  for (const auto& l : code_languages())
    if (l.id == id) return l;
  std::string known;
  for (const auto& l : code_languages()) known += (known.empty() ? "" : ", ") + l.id;
  fail("unknown code language '{}' (known: {})", id, known);
}

SandboxSpec program_spec(const CodeLanguage& language, const std::string& program, const HarnessCompat& compat) {
  const std::string& id = language.id;
  SandboxSpec spec;
  auto source = [&](const std::string& file) { spec.files[file] = program; };
  if (id == "cpp") {
    source("problem.cpp");
    spec.steps = {step({"g++", "problem.cpp", "-o", "problem", "-std=c++17"}, 15), step({"./problem"}, 15)};
  } else if (id == "go") {
    // `go test` only runs tests from *_test.go files; the harness of 2023 named the file *.go.
    const std::string file = compat.go_without_tests ? "problem.go" : "problem_test.go";
    source(file);
    spec.steps = {step({"go", "test", file}, 30)};
    spec.env = {{"GOCACHE", "/work/.cache/go-build"}, {"GOPATH", "/work/go"}, {"GOFLAGS", "-buildvcs=false"},
                {"GO111MODULE", "auto"}, {"CGO_ENABLED", "0"}};
  } else if (id == "java") {
    // The class is `Problem` (not public), so any file name compiles; javatuples on both class paths
    // (the harness's CLASSPATH for javac; -cp replaces CLASSPATH for java, so the jar goes there too).
    // -Xmx and the serial collector keep the JVM inside the sandbox's memory and thread limits.
    source("Problem.java");
    spec.env = {{"CLASSPATH", kJavatuples}};
    spec.steps = {step({"javac", "-encoding", "UTF8", "-d", "classes", "Problem.java"}, 15),
                  step({"java", "-ea", "-Xmx1g", "-XX:+UseSerialGC", "-cp", std::string("classes:") + kJavatuples,
                        "Problem"},
                       15)};
  } else if (const Interpreted* run = interpreted(id)) {
    const std::string file = std::string("problem.") + run->extension;
    source(file);
    spec.steps = {step({run->tool, file}, run->timeout_s)};
  } else if (id == "rs") {
    source("problem.rs");
    spec.steps = {step({"rustc", "problem.rs", "-o", "problem"}, 15), step({"./problem"}, 5)};
  } else if (id == "ts") {
    source("problem.ts");
    spec.steps = {step({"tsc", "--target", "esnext", "problem.ts"}, 15), step({"node", "problem.js"}, 15)};
  } else {
    fail("program_spec: no commands for language '{}'", id);
  }
  double total = 0;
  for (const auto& s : spec.steps) total += s.timeout_s;
  spec.limits = base_limits(id, total);
  return spec;
}

ProgramVerdict program_verdict(const CodeLanguage& language, const SandboxResult& r, const HarnessCompat&) {
  FUSELLM_CHECK(r.status != SandboxStatus::setup_error, "sandbox: could not run a {} program: {}", language.name,
                r.output);
  ProgramVerdict v;
  v.output = r.output;
  v.wall_s = r.wall_s;
  v.exit_code = r.status == SandboxStatus::ok ? 0 : r.exit_code;
  if (r.status == SandboxStatus::timed_out) {
    v.status = "Timeout";
    v.exit_code = -1;
    return v;
  }
  if (language.id == "go") {
    // eval_go: the status is read from `go test`'s report alone, and a pass also needs exit code 0 — a
    // `.go` file that does not build (compat mode) prints no "[build failed]": "OK", exit 1, not a pass.
    if (contains(r.output, "[setup failed]") || contains(r.output, "[build failed]")) v.status = "SyntaxError";
    else if (contains(r.output, "FAIL")) v.status = "Exception";
    else v.status = "OK";
    return v;
  }
  if (language.id == "php" && contains(r.output, "PHP Parse error")) {
    v.status = "SyntaxError";
    return v;
  }
  if (r.status == SandboxStatus::ok) {
    v.status = "OK";
  } else if (compiles_first(language.id) && r.step == 0) {
    v.status = "SyntaxError";  // the compiler failed (or was killed)
  } else {
    // A failed assertion, an uncaught exception, a signal, or output beyond the sandbox's cap.
    v.status = "Exception";
    if (r.signal != 0) v.exit_code = -r.signal;  // as Python's subprocess reports a signal
  }
  return v;
}

std::vector<ToolchainStatus> check_toolchains() {
  std::vector<ToolchainStatus> out;
  for (const auto& l : code_languages()) out.push_back(toolchain_status(l.id));
  return out;
}

const ToolchainStatus& toolchain_status(const std::string& id) {
  static std::mutex mutex;
  static std::map<std::string, ToolchainStatus> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(id); it != cache.end()) return it->second;
  const CodeLanguage& language = code_language(id);
  ToolchainStatus s;
  s.language = id;
  auto done = [&]() -> const ToolchainStatus& { return cache[id] = s; };
  if (auto why = sandbox_unavailable()) {
    s.problem = *why;
    return done();
  }
  for (const auto& tool : language.tools)
    if (!fs::exists(fs::path("/usr/bin") / tool)) {
      s.problem = fmt::format("/usr/bin/{} not found (Debian: apt install {}, or scripts/setup.sh --code-eval)", tool,
                              language.debian_packages);
      return done();
    }
  if (id == "java" && !fs::exists(kJavatuples)) {
    s.problem = fmt::format("{} not found (Debian: apt install libjavatuples-java)", kJavatuples);
    return done();
  }
  // Each tool's version, asked inside the sandbox: a toolchain that cannot run there is missing.
  for (const auto& tool : language.tools) {
    SandboxSpec spec;
    const std::string flag = tool == "go" ? "version" : (tool == "java" || tool == "javac") ? "-version" : "--version";
    spec.steps = {step({tool, flag}, 20)};
    spec.limits = base_limits(id, 20);
    const SandboxResult r = run_sandboxed(spec);
    std::string first = r.output.substr(0, r.output.find('\n'));
    if (r.status != SandboxStatus::ok) {
      s.problem = fmt::format("`{} {}` fails inside the sandbox ({}, exit {}): {}", tool, flag, to_string(r.status),
                              r.exit_code, first);
      return done();
    }
    s.version += (s.version.empty() ? "" : "; ") + first;
  }
  s.available = true;
  return done();
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  FUSELLM_CHECK(n >= 1 && c >= 0 && c <= n && k >= 1, "pass_at_k: need n >= 1, 0 <= c <= n, k >= 1 (n={}, c={}, k={})",
                n, c, k);
  if (n - c < k) return 1.0;
  double fail_all = 1.0;  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
  for (int64_t i = n - c + 1; i <= n; ++i) fail_all *= 1.0 - double(k) / double(i);
  return 1.0 - fail_all;
}

}  // namespace fusellm::eval
