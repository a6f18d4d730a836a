// The sandbox: basic step handling, then a hostile suite (network, reading and writing the host, fork and
// thread bombs, memory and CPU hogs, output floods, escaping children, killing everything) where every
// program must be contained and reported, and the host checked afterwards for anything left running.
// Every test skips, saying why, on machines where bubblewrap cannot create namespaces.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "fusellm/eval/sandbox.hpp"
#include "fusellm/util/error.hpp"
#include "common/test_paths.hpp"

namespace fs = std::filesystem;
using namespace fusellm::eval;

namespace {

#define REQUIRE_SANDBOX()                                                                 \
  do {                                                                                    \
    if (auto why = sandbox_unavailable()) GTEST_SKIP() << "sandbox unavailable: " << *why; \
  } while (0)

#define REQUIRE_PROGRAM(path) \
  do {                        \
    if (!fs::exists(path)) GTEST_SKIP() << path << " is not installed";  \
  } while (0)

const char* const kPython = "/usr/bin/python3";

SandboxSpec shell(const std::string& script) {
  SandboxSpec spec;
  spec.steps.push_back({{"/bin/sh", "-c", script}, 0});
  return spec;
}

SandboxSpec python(const std::string& code) {
  SandboxSpec spec;
  spec.files["prog.py"] = code;
  spec.steps.push_back({{kPython, "prog.py"}, 0});
  return spec;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// This test process adopts every orphan of its descendants (a process that escaped its sandbox's PID
// namespace would be reparented here, not to init), so "ours" can be told from the sandboxes of other
// processes running at the same time (ctest -j runs the MultiPL-E tests beside these).
const bool kSubreaper = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;

bool descends_from_us(const std::string& pid) {
  std::string at = pid;
  for (int depth = 0; depth < 64 && !at.empty() && at != "0" && at != "1"; ++depth) {
    if (at == std::to_string(::getpid())) return true;
    std::istringstream status(slurp("/proc/" + at + "/status"));
    std::string next;
    for (std::string line; std::getline(status, line);)
      if (line.rfind("PPid:", 0) == 0) next = std::to_string(std::stol(line.substr(5)));
    at = next;
  }
  return false;
}

// Host processes below this one that belong to a sandbox: running as a sandbox uid (when we are root) or
// carrying `marker` in their command line. A run must leave none of them behind.
std::vector<std::string> leftovers(const std::string& marker) {
  (void)kSubreaper;
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = slurp(e.path() / "cmdline");
    for (char& c : cmdline) c = c ? c : ' ';
    std::istringstream status(slurp(e.path() / "status"));
    bool sandbox_uid = false;
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Uid:", 0) == 0) {
        const unsigned long uid = std::stoul(line.substr(4));
        sandbox_uid = ::geteuid() == 0 && uid >= kSandboxUidBase && uid - kSandboxUidBase < kSandboxUidSpan;
      }
    if ((sandbox_uid || (!marker.empty() && cmdline.find(marker) != std::string::npos)) && descends_from_us(pid))
      found.push_back(pid + ": " + cmdline);
  }
  return found;
}

#define EXPECT_NO_LEFTOVERS(marker)                          \
  do {                                                       \
    auto left = leftovers(marker);                           \
    EXPECT_TRUE(left.empty()) << "left on the host: " << left.size()       \
                              << ", first: " << (left.empty() ? "" : left[0]); \
  } while (0)

std::string describe(const SandboxResult& r) {
  return fmt::format("status={} step={} exit={} signal={} wall={:.3f} cpu={:.3f} bytes={} output:\n{}",
                     to_string(r.status), r.step, r.exit_code, r.signal, r.wall_s, r.cpu_s, r.output_bytes,
                     r.output);
}

// ---------------------------------------------------------------------------------------------- basics

TEST(Sandbox, EchoOutputIsCaptured) {
  REQUIRE_SANDBOX();
  SandboxResult r = run_sandboxed(shell("echo hello; echo oops >&2"));
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  EXPECT_EQ(r.step, 0);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "hello\noops\n");
  EXPECT_EQ(r.output_bytes, 11);
  EXPECT_STREQ(to_string(r.status), "ok");
}

TEST(Sandbox, FailingStepStopsTheRunWithItsExitCode) {
  REQUIRE_SANDBOX();
  SandboxSpec spec = shell("echo one");
  spec.steps.push_back({{"/bin/sh", "-c", "echo two; exit 7"}, 0});
  spec.steps.push_back({{"/bin/sh", "-c", "echo three"}, 0});
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::failed) << describe(r);
  EXPECT_EQ(r.step, 1);
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.output, "one\ntwo\n");
}

TEST(Sandbox, MissingProgramIsAFailedStepNotASetupError) {
  REQUIRE_SANDBOX();
  SandboxSpec spec;
  spec.steps.push_back({{"no-such-program-fusellm"}, 0});
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::failed) << describe(r);
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.output.find("no-such-program-fusellm: not found"), std::string::npos) << r.output;
}

TEST(Sandbox, SignalIsReported) {
  REQUIRE_SANDBOX();
  SandboxResult r = run_sandboxed(shell("kill -SEGV $$"));
  EXPECT_EQ(r.status, SandboxStatus::signaled) << describe(r);
  EXPECT_EQ(r.signal, SIGSEGV);
  EXPECT_EQ(r.exit_code, -1);
}

TEST(Sandbox, BwrapFailureIsASetupError) {
  REQUIRE_SANDBOX();
  SandboxSpec spec = shell("true");
  spec.ro_binds = {"/nonexistent/fusellm-bind"};
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::setup_error) << describe(r);
  EXPECT_NE(r.output.find("fusellm-bind"), std::string::npos) << r.output;
  spec.ro_binds.clear();
  spec.files["../escape"] = "x";
  r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::setup_error) << describe(r);
}

TEST(Sandbox, CompileThenRunInOneSandbox) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM("/usr/bin/gcc");
  SandboxSpec spec;
  spec.files["src/main.c"] =
      "#include <stdio.h>\nint main(int argc, char** argv) { printf(\"built %s\\n\", argv[1]); return 0; }\n";
  spec.steps.push_back({{"gcc", "-O0", "-o", "prog", "src/main.c"}, 0});
  spec.steps.push_back({{"./prog", "and ran"}, 0});
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  EXPECT_EQ(r.step, 1);
  EXPECT_EQ(r.output, "built and ran\n");
}

TEST(Sandbox, PerStepTimeoutIsReportedAsTimedOut) {
  REQUIRE_SANDBOX();
  SandboxSpec spec = shell("echo first");
  spec.steps.push_back({{"sleep", "5"}, 0.5});
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::timed_out) << describe(r);
  EXPECT_EQ(r.step, 1);
  EXPECT_LT(r.wall_s, 2.0);
  // A program's own SIGKILL, well before its step's deadline, is a signal, not a timeout.
  SandboxSpec self = shell("kill -9 $$");
  self.steps[0].timeout_s = 5;
  r = run_sandboxed(self);
  EXPECT_EQ(r.status, SandboxStatus::signaled) << describe(r);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(Sandbox, FilesWithNestedPaths) {
  REQUIRE_SANDBOX();
  SandboxSpec spec = shell("cat top.txt a/b/c.txt a/b/d/e.txt; pwd");
  spec.files = {{"top.txt", "top\n"}, {"a/b/c.txt", "deep\n"}, {"a/b/d/e.txt", "deeper\n"}};
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  EXPECT_EQ(r.output, "top\ndeep\ndeeper\n/work\n");
}

TEST(Sandbox, ArgumentsSurviveQuoting) {
  REQUIRE_SANDBOX();
  const std::vector<std::string> args = {"two words", "it's", "\"dq\"", "$HOME", "`id`", "$(id)", "a\nb",
                                         "back\\slash\\n", "*", "; exit 3", "", "-n", "'", "\t"};
  SandboxSpec spec;
  spec.steps.push_back({{"printf", "[%s]"}, 0});
  std::string expected;
  for (const auto& a : args) {
    spec.steps[0].argv.push_back(a);
    expected += "[" + a + "]";
  }
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  EXPECT_EQ(r.output, expected);
}

TEST(Sandbox, EnvironmentIsMinimalPlusSpecEnv) {
  REQUIRE_SANDBOX();
  ::setenv("FUSELLM_HOST_ONLY", "leak", 1);
  SandboxSpec spec;
  spec.steps.push_back({{"env"}, 0});
  spec.env = {{"GREETING", "hello world $x"}, {"LANG", "C"}};
  SandboxResult r = run_sandboxed(spec);
  ::unsetenv("FUSELLM_HOST_ONLY");
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  for (const char* line : {"GREETING=hello world $x\n", "HOME=/work\n", "PATH=/usr/bin:/bin\n", "LANG=C\n",
                           "TMPDIR=/work/.tmp\n"})
    EXPECT_NE(r.output.find(line), std::string::npos) << line << " missing from\n" << r.output;
  EXPECT_EQ(r.output.find("FUSELLM_HOST_ONLY"), std::string::npos) << r.output;
}

// ------------------------------------------------------------------------------------------- hostile

TEST(SandboxHostile, NetworkIsUnreachable) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM(kPython);
  // Deliberately without SOCK_CLOEXEC: the listening fd must not reach the sandbox either.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  SandboxSpec spec = python(
      "import os, socket, sys\n"
      "def attempt(name, host, port):\n"
      "    try:\n"
      "        socket.create_connection((host, port), timeout=1).close()\n"
      "        print(name, 'CONNECTED')\n"
      "    except OSError as e:\n"
      "        print(name, 'blocked', type(e).__name__)\n"
      "attempt('host-listener', '127.0.0.1', int(sys.argv[1]))\n"
      "attempt('cloudflare', '1.1.1.1', 443)\n"
      "attempt('google-dns', '8.8.8.8', 53)\n"
      "try:\n"
      "    print('dns RESOLVED', socket.getaddrinfo('example.com', 443))\n"
      "except OSError as e:\n"
      "    print('dns blocked', type(e).__name__)\n"
      "print('fds', sorted(int(f) for f in os.listdir('/proc/self/fd')))\n");
  spec.steps[0].argv.push_back(std::to_string(port));
  SandboxResult r = run_sandboxed(spec);
  sockaddr_in peer{};
  socklen_t peer_len = sizeof peer;
  const int accepted = ::accept(listener, reinterpret_cast<sockaddr*>(&peer), &peer_len);
  ::close(listener);
  EXPECT_EQ(accepted, -1) << "the host listener accepted a connection from the sandbox";
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  for (const char* name : {"host-listener blocked", "cloudflare blocked", "google-dns blocked", "dns blocked"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name << " missing:\n" << r.output;
  EXPECT_EQ(r.output.find("CONNECTED"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("RESOLVED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("fds [0, 1, 2, 3]"), std::string::npos) << r.output;  // 3: listdir's own
  EXPECT_NO_LEFTOVERS("");
}

TEST(SandboxHostile, HostFilesAreInvisible) {
  REQUIRE_SANDBOX();
  const fs::path secret_dir = fusellm::test::scratch_dir("sandbox_secret");
  std::ofstream(secret_dir / "secret.txt") << "top secret\n";
  const fs::path checkout_file = fusellm::test::source_dir() / "CMakeLists.txt";
  const char* home = std::getenv("HOME");
  std::vector<std::string> targets = {(secret_dir / "secret.txt").string(), checkout_file.string(),
                                      "/etc/shadow", "/etc/passwd", "/etc/hostname", "/etc/resolv.conf"};
  std::vector<std::string> dirs = {"/root", "/home", secret_dir.string(), fusellm::test::source_dir().string()};
  if (home && *home) {
    dirs.push_back(home);
    dirs.push_back(std::string(home) + "/.ssh");
  }
  std::string script;
  for (const auto& t : targets)
    script += "if cat " + t + " >/dev/null 2>&1; then echo 'READ " + t + "'; else echo 'hidden " + t +
              "'; fi\n";
  for (const auto& d : dirs)
    script += "if ls " + d + " >/dev/null 2>&1; then echo 'LISTED " + d + "'; else echo 'hidden " + d +
              "'; fi\n";
  script += "echo ETC: $(ls /etc)\n";
  SandboxResult r = run_sandboxed(shell(script));
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  EXPECT_TRUE(fs::exists(checkout_file));  // the host has them: their absence inside means something
  for (const auto& t : targets) EXPECT_NE(r.output.find("hidden " + t), std::string::npos) << r.output;
  for (const auto& d : dirs) EXPECT_NE(r.output.find("hidden " + d), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("READ"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("LISTED"), std::string::npos) << r.output;
  const std::string etc = r.output.substr(std::min(r.output.find("ETC:"), r.output.size()));
  EXPECT_NE(etc.find("ld.so.cache"), std::string::npos) << r.output;
  for (const char* name : {"passwd", "shadow", "ssh", "hosts", "resolv.conf", "hostname"})
    EXPECT_EQ(etc.find(name), std::string::npos) << name << " is listed in the sandbox's /etc: " << etc;
  fs::remove_all(secret_dir.parent_path());
}

TEST(SandboxHostile, WritesOutsideTheWorkDirLandNowhere) {
  REQUIRE_SANDBOX();
  const std::string tag = "fusellm_probe_" + std::to_string(::getpid());
  const std::vector<std::string> outside = {"/usr/" + tag, "/etc/" + tag, "/" + tag, "/work/../" + tag,
                                            "../../" + tag, "/dev/" + tag, "/proc/" + tag};
  std::string script;
  for (const auto& p : outside)
    script += "if echo x 2>/dev/null > " + p + "; then echo 'WROTE " + p + "'; else echo 'refused " + p +
              "'; fi\n";
  script += "echo x > /tmp/" + tag + " && echo 'own tmp ok'\necho x > /work/" + tag + " && echo 'work ok'\n";
  script += "echo kernel > /proc/sys/kernel/hostname 2>/dev/null && echo 'WROTE sysctl'\nexit 0\n";
  SandboxResult r = run_sandboxed(shell(script));
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  for (const auto& p : outside) EXPECT_NE(r.output.find("refused " + p), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("WROTE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("own tmp ok"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("work ok"), std::string::npos) << r.output;
  for (const char* dir : {"/tmp/", "/", "/usr/", "/etc/", "/work/"})
    EXPECT_FALSE(fs::exists(dir + tag)) << dir << tag << " appeared on the host";
}

TEST(SandboxHostile, ForkBombIsContained) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM(kPython);
  SandboxSpec spec = python(
      "import os, time\n"
      "reported = False\n"
      "while True:\n"
      "    try:\n"
      "        os.fork()\n"
      "    except OSError as e:\n"
      "        if not reported:\n"
      "            print('fork refused:', e.strerror, flush=True)\n"
      "            reported = True\n"
      "        time.sleep(0.05)\n");
  spec.limits.processes = 32;
  spec.limits.wall_s = 2;
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::timed_out) << describe(r);
  EXPECT_LT(r.wall_s, 3.0);
  EXPECT_NE(r.output.find("fork refused"), std::string::npos) << r.output;
  EXPECT_NO_LEFTOVERS("prog.py");
}

TEST(SandboxHostile, ProcessAndThreadLimitsAreExact) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM(kPython);
  // Linear, so the count is exact: children that wait on a pipe, then threads that wait on an event.
  SandboxSpec spec = python(
      "import os, threading\n"
      "r, w = os.pipe()\n"
      "kids = 0\n"
      "try:\n"
      "    while kids < 1000:\n"
      "        if os.fork() == 0:\n"
      "            os.close(w); os.read(r, 1); os._exit(0)\n"
      "        kids += 1\n"
      "except OSError:\n"
      "    pass\n"
      "os.close(w)\n"
      "for _ in range(kids): os.wait()\n"
      "stop = threading.Event()\n"
      "threads = 0\n"
      "try:\n"
      "    while threads < 1000:\n"
      "        threading.Thread(target=stop.wait, daemon=True).start(); threads += 1\n"
      "except RuntimeError:\n"
      "    pass\n"
      "print('children', kids, 'threads', threads, flush=True)\n"
      "stop.set()\n");
  spec.limits.processes = 32;
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  int kids = -1, threads = -1;
  ASSERT_EQ(std::sscanf(r.output.c_str(), "children %d threads %d", &kids, &threads), 2) << r.output;
  // 32 tasks for the program, its own main thread included; the sandbox's machinery is not charged.
  EXPECT_EQ(kids, 31) << r.output;
  EXPECT_EQ(threads, 31) << r.output;
  EXPECT_NO_LEFTOVERS("prog.py");
}

// A memory hog that printed "<word> <bytes it reached> <its VmSize before>" when allocation failed: what it
// held plus where it started is the 512 MiB address-space limit, within 10 %.
void expect_stopped_at_the_limit(const SandboxResult& r, const std::string& word) {
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  long long reached = 0, base = 0;
  ASSERT_EQ(std::sscanf(r.output.c_str(), (word + " %lld %lld").c_str(), &reached, &base), 2) << r.output;
  EXPECT_NEAR(static_cast<double>(reached + base), 512.0 * (1 << 20), 0.1 * 512 * (1 << 20)) << r.output;
}

TEST(SandboxHostile, MemoryHogGetsMemoryErrorAtTheLimit) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM(kPython);
  // bytes(n) is calloc'ed from fresh mmap()s: address space is taken, no page touched.
  SandboxSpec spec = python(
      "import re\n"
      "def vm():\n"
      "    return int(re.search(r'VmSize:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)) * 1024\n"
      "base = vm()\n"
      "held = []\n"
      "try:\n"
      "    while True: held.append(bytes(4 << 20))\n"
      "except MemoryError:\n"
      "    print('MemoryError', len(held) * (4 << 20), base, flush=True)\n");
  spec.limits.address_space = 512LL << 20;
  expect_stopped_at_the_limit(run_sandboxed(spec), "MemoryError");
}

TEST(SandboxHostile, MemoryLimitIsPreciseInC) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM("/usr/bin/gcc");
  SandboxSpec spec;
  spec.files["hog.c"] =
      "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
      "static long vm(void) { char line[256]; long kb = 0; FILE* f = fopen(\"/proc/self/status\", \"r\");\n"
      "  while (fgets(line, sizeof line, f)) if (!strncmp(line, \"VmSize:\", 7)) kb = atol(line + 7);\n"
      "  fclose(f); return kb * 1024; }\n"
      "int main(void) { long base = vm(), total = 0;\n"
      "  while (malloc(4 << 20)) total += 4 << 20;\n"
      "  printf(\"NULL %ld %ld\\n\", total, base); return 0; }\n";
  spec.steps.push_back({{"gcc", "-O1", "-o", "hog", "hog.c"}, 0});
  spec.steps.push_back({{"./hog"}, 0});
  spec.limits.address_space = 512LL << 20;
  expect_stopped_at_the_limit(run_sandboxed(spec), "NULL");
}

TEST(SandboxHostile, CpuLoopIsKilledAtItsCpuLimit) {
  REQUIRE_SANDBOX();
  SandboxSpec spec = shell("while :; do :; done");
  spec.limits.cpu_s = 2;
  spec.limits.wall_s = 10;
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::signaled) << describe(r);
  EXPECT_EQ(r.signal, SIGXCPU) << describe(r);
  EXPECT_NEAR(r.cpu_s, 2.0, 0.2) << describe(r);
}

TEST(SandboxHostile, SleeperIsKilledAtTheWallLimit) {
  REQUIRE_SANDBOX();
  SandboxSpec spec = shell("sleep 100");
  spec.limits.wall_s = 2;
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::timed_out) << describe(r);
  EXPECT_NEAR(r.wall_s, 2.0, 0.2) << describe(r);
  EXPECT_NO_LEFTOVERS("sleep 100");
}

TEST(SandboxHostile, OutputFloodIsCapped) {
  REQUIRE_SANDBOX();
  SandboxSpec spec = shell("head -c 1000000000 /dev/zero");
  spec.limits.output_bytes = 1 << 20;
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::output_capped) << describe(r);
  EXPECT_EQ(static_cast<int64_t>(r.output.size()), spec.limits.output_kept);
  EXPECT_GT(r.output_bytes, 1 << 20);
  EXPECT_LT(r.output_bytes, (1 << 20) + (1 << 17));  // stopped within a read or two of the cap
  EXPECT_LT(r.wall_s, 2.0);
  EXPECT_NO_LEFTOVERS("1000000000");
}

TEST(SandboxHostile, ChildrenThatOutliveTheirParentAreGone) {
  REQUIRE_SANDBOX();
  // Each sleeper has its own marker duration; the step lists, from inside, which ones are alive at its end.
  SandboxSpec spec = shell("sh spawn.sh");  // not -c: the script's text must not be in a command line
  spec.files["spawn.sh"] = (
      "(setsid sleep 1234.51 &)\n"
      "sh -c '(sleep 1234.52 &) &'\n"
      "nohup sleep 1234.53 >/dev/null 2>&1 &\n"
      "setsid sleep 1234.54 </dev/null >/dev/null 2>&1 &\n"
      "sleep 0.2\n"
      "for p in /proc/[0-9]*; do tr '\\0' ' ' 2>/dev/null < $p/cmdline; echo; done |\n"
      "  grep -o '1234[.]5.' | sort -u | tr '\\n' ' '\n");
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::ok) << describe(r);
  EXPECT_EQ(r.output, "1234.51 1234.52 1234.53 1234.54 ") << "the sleepers did not all start";
  EXPECT_LT(r.wall_s, 2.0);  // the run does not wait for them
  EXPECT_NO_LEFTOVERS("1234.5");
}

TEST(SandboxHostile, KillingEverythingReachesNothingOutside) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM(kPython);
  // A host process in the test's own process group: kill(0) or kill(-1) leaking out would take it too.
  const pid_t witness = ::fork();
  ASSERT_GE(witness, 0);
  if (witness == 0) {
    ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  SandboxSpec spec =
      shell("kill -9 -1 2>/dev/null; echo survived kill -1; kill -9 1; echo survived kill 1; exit 0");
  // Inside, the driver is PID 1 and process group 1, so killpg(parent's group) is kill(-1): all refused
  // or empty; kill(0) then takes the program's own group, which is all it can reach.
  spec.files["prog.py"] =
      "import os, signal\n"
      "def attempt(name, kill):\n"
      "    try:\n"
      "        kill()\n"
      "    except OSError:\n"
      "        pass\n"
      "    print('python survived', name, flush=True)\n"
      "attempt('kill(-1)', lambda: os.kill(-1, signal.SIGKILL))\n"
      "attempt('kill(1)', lambda: os.kill(1, signal.SIGKILL))\n"
      "attempt('killpg(parent)', lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL))\n"
      "os.kill(0, signal.SIGKILL)\n"
      "print('NOT REACHED')\n";
  spec.steps.push_back({{kPython, "prog.py"}, 0});
  spec.steps.push_back({{"sh", "-c", "echo NOT REACHED"}, 0});
  SandboxResult r = run_sandboxed(spec);
  int wstatus = 0;
  EXPECT_EQ(::waitpid(witness, &wstatus, WNOHANG), 0) << "the host witness process died";
  ::kill(witness, SIGKILL);
  ::waitpid(witness, &wstatus, 0);
  EXPECT_EQ(r.status, SandboxStatus::signaled) << describe(r);
  EXPECT_EQ(r.step, 1);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.output,
            "survived kill -1\nsurvived kill 1\npython survived kill(-1)\npython survived kill(1)\n"
            "python survived killpg(parent)\n");
  // The shell way to kill its own process group, alone.
  SandboxSpec group = shell("kill -9 0");
  r = run_sandboxed(group);
  EXPECT_EQ(r.status, SandboxStatus::signaled) << describe(r);
  EXPECT_NO_LEFTOVERS("prog.py");
}

TEST(SandboxHostile, StepStatusCannotBeForged) {
  REQUIRE_SANDBOX();
  REQUIRE_PROGRAM(kPython);
  // The driver (PID 1) holds the status pipe: the program tries every way to it, then fails for real.
  SandboxSpec spec = python(
      "import ctypes, os, sys\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "print('ptrace', 'ALLOWED' if libc.ptrace(16, 1, 0, 0) == 0 else 'denied', flush=True)\n"
      "for path, mode in [('/proc/1/fd/3', 'w'), ('/proc/1/mem', 'r+b')]:\n"
      "    try:\n"
      "        with open(path, mode) as f:\n"
      "            f.write('E 0 0\\n' if mode == 'w' else b'')\n"
      "        print(path, 'OPENED', flush=True)\n"
      "    except OSError:\n"
      "        print(path, 'denied', flush=True)\n"
      "try:\n"
      "    os.write(3, b'E 0 0\\n')\n"
      "    print('fd 3 WRITTEN', flush=True)\n"
      "except OSError:\n"
      "    print('fd 3 closed', flush=True)\n"
      "sys.exit(3)\n");
  spec.limits.wall_s = 3;  // a stopped driver (ptrace allowed) would otherwise hang the run
  SandboxResult r = run_sandboxed(spec);
  EXPECT_EQ(r.status, SandboxStatus::failed) << describe(r);
  EXPECT_EQ(r.step, 0);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "ptrace denied\n/proc/1/fd/3 denied\n/proc/1/mem denied\nfd 3 closed\n");
}

TEST(SandboxHostile, MissingBwrapIsNamedInTheMessage) {
  const char* missing = "/nonexistent/fusellm-bwrap";
  ::setenv("FUSELLM_BWRAP", missing, 1);
  std::optional<std::string> why = sandbox_unavailable();
  bool threw = false;
  try {
    run_sandboxed(shell("true"));
  } catch (const fusellm::Error& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  ::unsetenv("FUSELLM_BWRAP");
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find(missing), std::string::npos) << *why;
  EXPECT_NE(why->find("FUSELLM_BWRAP"), std::string::npos) << *why;
  EXPECT_TRUE(threw);
  // Runs even where sandboxing is impossible (it tests exactly that path); only what follows needs it.
  REQUIRE_SANDBOX();
  EXPECT_EQ(run_sandboxed(shell("true")).status, SandboxStatus::ok);
}

// -------------------------------------------------------------------------------------- execution pool

TEST(ExecutionPool, RoutesEveryResultToItsCallback) {
  REQUIRE_SANDBOX();
  std::mutex mutex;
  std::vector<std::string> outputs(8);
  std::atomic<int> calls{0};
  {
    ExecutionPool pool(2);
    EXPECT_EQ(pool.workers(), 2);
    for (int i = 0; i < 8; ++i)
      pool.submit(shell("echo job " + std::to_string(i)), [&, i](SandboxResult r) {
        std::lock_guard<std::mutex> lock(mutex);
        outputs[i] = r.output;
        ++calls;
      });
    pool.submit(shell("true"), [](SandboxResult) { throw std::runtime_error("callback failure"); });
    pool.wait();
    EXPECT_EQ(calls.load(), 8);
    pool.submit(shell("echo after"), [&](SandboxResult r) { outputs[0] += r.output; });
  }  // the destructor waits for the last one
  for (int i = 0; i < 8; ++i) EXPECT_EQ(outputs[i], "job " + std::to_string(i) + "\n" + (i ? "" : "after\n"));
}

TEST(ExecutionPool, RunsConcurrently) {
  REQUIRE_SANDBOX();
  ExecutionPool pool(2);
  std::atomic<int> ok{0};
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i)
    pool.submit(shell("sleep 1"), [&](SandboxResult r) { ok += r.status == SandboxStatus::ok; });
  pool.wait();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(ok.load(), 2);
  EXPECT_LT(took, 1.8);
  EXPECT_NO_LEFTOVERS("");
}

TEST(ExecutionPool, UnavailableSandboxBecomesASetupErrorResult) {
  REQUIRE_SANDBOX();
  ::setenv("FUSELLM_BWRAP", "/nonexistent/fusellm-bwrap", 1);
  SandboxResult got;
  {
    ExecutionPool pool(1);
    pool.submit(shell("true"), [&](SandboxResult r) { got = std::move(r); });
  }
  ::unsetenv("FUSELLM_BWRAP");
  EXPECT_EQ(got.status, SandboxStatus::setup_error);
  EXPECT_NE(got.output.find("fusellm-bwrap"), std::string::npos) << got.output;
}

}  // namespace
