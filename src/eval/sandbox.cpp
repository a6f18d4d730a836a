// bubblewrap-based sandbox for untrusted programs (see sandbox.hpp for what is isolated).
//
// Shape of one run:
//   run_sandboxed ─fork─▶ child: setsid, rlimits, drop root to a per-run uid, exec bwrap
//                          bwrap (outer, host namespaces) ─clone─▶ driver: a copy of /bin/sh as PID 1 of
//                          the new PID namespace (--as-pid-1), running the steps one after the other.
// The driver being PID 1 matters twice: when it exits the kernel kills everything left in the namespace
// *before* bwrap's waitpid() returns, so "bwrap exited" means "nothing of the run is left"; and every
// process of the run is reaped inside that tree, so wait4() on bwrap yields the CPU time of all of them.
#include "fusellm/eval/sandbox.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "fusellm/util/error.hpp"

namespace fusellm::eval {

const char* to_string(SandboxStatus status) {
  switch (status) {
    case SandboxStatus::ok: return "ok";
    case SandboxStatus::failed: return "failed";
    case SandboxStatus::signaled: return "signaled";
    case SandboxStatus::timed_out: return "timed_out";
    case SandboxStatus::output_capped: return "output_capped";
    case SandboxStatus::setup_error: return "setup_error";
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxSlots = 512;           // concurrent runs per process as root (one uid each)
constexpr double kKillGraceS = 2;        // after killing the driver, how long bwrap gets to notice
const char* const kDriverPath = "/.fusellm/driver.sh";  // outside /work, on the read-only root
const char* const kShellPath = "/.fusellm/sh";          // the driver's shell: an execute-only copy

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept { reset(o.release()); return *this; }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
  void reset(int fd = -1) { if (fd_ >= 0) ::close(fd_); fd_ = fd; }
 private:
  int fd_;
};

std::pair<Fd, Fd> make_pipe() {
  int p[2];
  // O_CLOEXEC: another thread's concurrent run must not inherit our pipe ends (it would hold EOF back).
  if (::pipe2(p, O_CLOEXEC) != 0) fail("sandbox: pipe2: {}", std::strerror(errno));
  return {Fd(p[0]), Fd(p[1])};
}

Fd memfd_with(const std::string& name, const std::string& data) {
  Fd fd(static_cast<int>(::syscall(SYS_memfd_create, name.c_str(), MFD_CLOEXEC)));
  if (fd.get() < 0) fail("sandbox: memfd_create: {}", std::strerror(errno));
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("sandbox: writing memfd: {}", std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  ::lseek(fd.get(), 0, SEEK_SET);  // bwrap copies from the current offset
  return fd;
}

// The bytes of the host's /bin/sh (dash on Debian), read once.
const std::string& shell_binary() {
  static const std::string bytes = [] {
    std::error_code ec;
    const auto path = std::filesystem::canonical("/bin/sh", ec);
    std::ifstream in(ec ? std::filesystem::path("/bin/sh") : path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }();
  if (bytes.empty()) fail("sandbox: cannot read /bin/sh");
  return bytes;
}

std::string shell_quote(const std::string& s) {
  // Single quotes keep every byte literal (newlines, $, \, ", spaces); a ' is closed, escaped, reopened.
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The driver runs as PID 1 inside. Status lines on fd 3: "S" (the sandbox is up, so a failure after this
// is not bwrap's), "B i" (step i begins), "E i rc". Steps run with fd 3 closed, and the driver's shell is
// an execute-only copy (mode 0111): exec'ing an unreadable binary makes the process non-dumpable, so a
// program of the same uid can neither ptrace it nor open /proc/1/fd/3 or /proc/1/mem to forge a status.
// Besides, the exit code comes from bwrap's own exit status (the driver exits with the failing step's).
// `(exec ...)` runs argv[0] from PATH, never a shell builtin of the same name (echo, kill).
std::string driver_script(const SandboxSpec& spec) {
  // The driver's own stderr goes to /dev/null (dash would add "Killed" or "Segmentation fault" lines to
  // the program's output); steps get the real one back from fd 4.
  std::string s = "umask 022\nexec 4>&2 2>/dev/null\nprintf 'S\\n' >&3\n";
  for (size_t i = 0; i < spec.steps.size(); ++i) {
    const SandboxStep& step = spec.steps[i];
    s += fmt::format("printf 'B {}\\n' >&3\n(exec ", i);
    if (step.timeout_s > 0) s += fmt::format("/usr/bin/timeout -s KILL {:.3f} ", step.timeout_s);
    for (const std::string& arg : step.argv) s += shell_quote(arg) + ' ';
    s += ") 3>&- 2>&4 4>&-\nrc=$?\n";
    s += fmt::format("printf 'E {} %d\\n' \"$rc\" >&3\n[ \"$rc\" -eq 0 ] || exit \"$rc\"\n", i);
  }
  return s + "exit 0\n";
}

// Empty when the spec is usable, else what is wrong with it (reported as a setup_error).
std::string spec_problem(const SandboxSpec& spec) {
  auto has_nul = [](const std::string& s) { return s.find('\0') != std::string::npos; };
  for (const auto& step : spec.steps) {
    if (step.argv.empty()) return "a step has an empty argv";
    for (const auto& a : step.argv)
      if (has_nul(a)) return "a step argument contains a NUL byte";
  }
  for (const auto& [path, data] : spec.files) {
    if (path.empty() || path[0] == '/' || has_nul(path)) return fmt::format("bad file path '{}'", path);
    std::stringstream parts(path);
    for (std::string part; std::getline(parts, part, '/');)
      if (part.empty() || part == "." || part == "..") return fmt::format("bad file path '{}'", path);
  }
  for (const auto& [key, value] : spec.env)
    if (key.empty() || key.find('=') != std::string::npos || has_nul(key) || has_nul(value))
      return fmt::format("bad environment variable name '{}'", key);
  for (const auto& p : spec.ro_binds)
    if (p.empty() || p[0] != '/' || has_nul(p)) return fmt::format("ro_binds entry '{}' is not absolute", p);
  return {};
}

// Root gives each concurrent run its own uid so that RLIMIT_NPROC (counted per real uid, host-wide)
// limits exactly that run, and a leftover could be found by uid.
class UidSlot {
 public:
  UidSlot() {
    std::lock_guard<std::mutex> lock(mutex());
    auto& used = slots();
    for (int i = 0; i < kMaxSlots; ++i)
      if (used.insert(i).second) { slot_ = i; return; }
    fail("sandbox: more than {} concurrent runs", kMaxSlots);
  }
  ~UidSlot() { std::lock_guard<std::mutex> lock(mutex()); slots().erase(slot_); }
  UidSlot(const UidSlot&) = delete;
  UidSlot& operator=(const UidSlot&) = delete;
  // Unique across processes too: two evals (or ctest -j's test processes) at once must not share a uid,
  // or they would share RLIMIT_NPROC's count.
  uid_t uid() const {
    const uint32_t process = static_cast<uint32_t>(::getpid()) % (kSandboxUidSpan / kMaxSlots);
    return kSandboxUidBase + process * kMaxSlots + static_cast<uid_t>(slot_);
  }
 private:
  static std::mutex& mutex() { static std::mutex m; return m; }
  static std::set<int>& slots() { static std::set<int> s; return s; }
  int slot_ = -1;
};

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Root gets a sandbox uid per run. Root inside a container's user namespace (rootless podman maps
// "0 1000 1" and "1 100000 65536") may not have those uids mapped; if its uid is not the host's root it
// runs like a non-root user (no uid change; RLIMIT_NPROC binds it). Any uid that is the host's root
// underneath (uid_map says so) is refused: RLIMIT_NPROC would not bind, and the program would act as the
// host's uid 0 inside its namespaces.
struct UidPlan {
  bool drop = false;        // use kSandboxUidBase + slot
  std::string refusal;      // non-empty: no safe way to run
};

UidPlan uid_plan() {
  const std::string uid_map = read_small_file("/proc/self/uid_map");
  const std::string gid_map = read_small_file("/proc/self/gid_map");
  auto covers = [](const std::string& map, uint64_t first, uint64_t n, uint64_t* outside_of_first) {
    std::istringstream lines(map);
    for (uint64_t inside, outside, count; lines >> inside >> outside >> count;)
      if (inside <= first && first + n <= inside + count) {
        if (outside_of_first) *outside_of_first = outside + (first - inside);
        return true;
      }
    return false;
  };
  UidPlan p;
  const uid_t me = ::geteuid();
  if (me == 0 && covers(uid_map, kSandboxUidBase, kSandboxUidSpan, nullptr) &&
      covers(gid_map, kSandboxUidBase, kSandboxUidSpan, nullptr)) {
    p.drop = true;
    return p;
  }
  uint64_t host_uid = 0;
  if (!covers(uid_map, me, 1, &host_uid) || host_uid == 0)
    p.refusal = fmt::format("uid {} is the host's root, in a user namespace that does not map the sandbox "
                            "uids {}..{}: run as a non-root user or map those uids",
                            me, kSandboxUidBase, kSandboxUidBase + (kSandboxUidSpan - 1));
  return p;
}

std::vector<pid_t> host_pids() {
  std::vector<pid_t> pids;
  if (DIR* dir = ::opendir("/proc")) {
    while (dirent* e = ::readdir(dir))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') pids.push_back(static_cast<pid_t>(std::atol(e->d_name)));
    ::closedir(dir);
  }
  return pids;
}

// Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses): [0] state,
// [1] parent pid, [11..14] utime, stime, cutime, cstime in clock ticks. Empty once the process is gone.
std::vector<std::string> stat_fields(pid_t pid) {
  const std::string stat = read_small_file(fmt::format("/proc/{}/stat", pid));
  const size_t close = stat.rfind(')');
  std::vector<std::string> fields;
  if (close == std::string::npos) return fields;
  std::istringstream rest(stat.substr(close + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

pid_t parent_of(pid_t pid) {
  const auto f = stat_fields(pid);
  return f.size() > 1 ? static_cast<pid_t>(std::atol(f[1].c_str())) : -1;
}

pid_t find_child_of(pid_t parent) {
  for (pid_t pid : host_pids())
    if (parent_of(pid) == parent) return pid;
  return -1;
}

// Tasks (threads included, as RLIMIT_NPROC counts them) whose real uid is `uid`, counted from /proc.
int64_t count_tasks_of(uid_t uid) {
  int64_t total = 0;
  for (pid_t pid : host_pids()) {
    std::istringstream status(read_small_file(fmt::format("/proc/{}/status", pid)));
    bool mine = false;
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Uid:", 0) == 0) mine = std::stoul(line.substr(4)) == uid;
      if (mine && line.rfind("Threads:", 0) == 0) total += std::stol(line.substr(8));
    }
  }
  return total;
}

// CPU seconds (their own and their reaped children's) of the processes in `driver`'s PID namespace other
// than the driver itself. Sampled just before a kill: the kernel autoreaps what it kills when the
// namespace's PID 1 dies, so their CPU time would otherwise reach no rusage.
double namespace_cpu_s(pid_t driver) {
  std::error_code ec;
  const auto ns_of = [&ec](pid_t pid) {
    return std::filesystem::read_symlink(fmt::format("/proc/{}/ns/pid", pid), ec);
  };
  const auto ns = ns_of(driver);
  if (ec) return 0;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double total = 0;
  for (pid_t pid : host_pids()) {
    if (pid == driver || ns_of(pid) != ns || ec) continue;
    const auto f = stat_fields(pid);
    for (size_t i = 11; i < 15 && i < f.size(); ++i) total += std::stod(f[i]) / tick;
  }
  return total;
}

Fd pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
  (void)pid;
  return Fd();
#endif
}

void pidfd_kill(const Fd& pidfd, pid_t pid) {
#ifdef SYS_pidfd_send_signal
  if (pidfd.get() >= 0 && ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) == 0) return;
#endif
  (void)pidfd;
  ::kill(pid, SIGKILL);
}

struct Backend {
  std::string bwrap;
  bool disable_userns = true;   // bwrap >= 0.8 only; dropped when the probe finds an older one
};

std::vector<std::string> bwrap_args(const SandboxSpec& spec, const Backend& backend,
                                    const std::vector<std::pair<int, std::string>>& files, int driver_fd,
                                    int shell_fd) {
  const auto& lim = spec.limits;
  std::vector<std::string> a = {backend.bwrap, "--unshare-all", "--unshare-user"};
  if (backend.disable_userns) a.push_back("--disable-userns");  // no nested namespaces: less kernel surface
  for (const char* s : {"--die-with-parent", "--new-session", "--as-pid-1", "--uid", "65534", "--gid", "65534",
                        "--hostname", "sandbox", "--clearenv"})
    a.push_back(s);
  auto add = [&a](std::initializer_list<std::string> xs) { a.insert(a.end(), xs); };
  add({"--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/work", "--setenv", "LANG", "C.UTF-8",
       "--setenv", "TMPDIR", "/work/.tmp"});
  for (const auto& [key, value] : spec.env) add({"--setenv", key, value});
  add({"--ro-bind", "/usr", "/usr"});
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const char* top : {"/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin"}) {
    // Merged /usr (Debian 12) has these as symlinks into /usr; older layouts get them bound.
    if (fs::is_symlink(top, ec)) add({"--symlink", fs::read_symlink(top, ec).string(), top});
    else if (fs::is_directory(top, ec)) add({"--ro-bind", top, top});
  }
  // Only what toolchains read from /etc; never passwd, shadow, ssh, hosts or resolv.conf.
  std::vector<std::string> etc = {"/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf",
                                  "/etc/ld.so.conf.d", "/etc/R", "/etc/php", "/etc/ssl/openssl.cnf"};
  for (const auto& e : fs::directory_iterator("/etc", ec))
    if (e.path().filename().string().rfind("java-", 0) == 0) etc.push_back(e.path().string());
  for (const auto& p : etc)
    if (fs::exists(p, ec)) add({"--ro-bind", p, p});
  const std::string size = std::to_string(std::max<int64_t>(lim.tmpfs_bytes, 1 << 20));
  // A fresh procfs of the new PID namespace; /dev read-only with a size-capped /dev/shm (an unsized tmpfs
  // would let the program fill host memory past RLIMIT_AS).
  add({"--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"});
  add({"--size", size, "--tmpfs", "/work", "--size", size, "--tmpfs", "/tmp", "--dir", "/work/.tmp"});
  for (const auto& p : spec.ro_binds) add({"--ro-bind", p, p});
  std::set<std::string> dirs;
  for (const auto& [path, data] : spec.files)
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
      dirs.insert(path.substr(0, slash));  // prefixes sort before what they prefix: parents come first
  for (const auto& d : dirs) add({"--dir", "/work/" + d});
  for (const auto& [fd, path] : files) add({"--file", std::to_string(fd), "/work/" + path});
  add({"--ro-bind-data", std::to_string(driver_fd), kDriverPath});
  add({"--perms", "0111", "--ro-bind-data", std::to_string(shell_fd), kShellPath});
  add({"--chdir", "/work", "--remount-ro", "/", kShellPath, kDriverPath});
  return a;
}

// Everything the forked child needs, prepared before fork(): after fork in a threaded process only
// async-signal-safe calls are allowed (no allocation), so the child just walks these arrays.
struct ChildPlan {
  std::vector<char*> argv, envp;
  std::vector<int> fds;   // fds[i] becomes fd i
  mutable std::vector<int> moved;  // scratch for the child, sized beforehand
  std::vector<std::pair<int, rlimit>> limits;
  bool drop = false;
  uid_t uid = 0;
  pid_t parent = 0;
};

void child_say(const char* what) {
  ssize_t ignored = ::write(2, what, std::strlen(what));
  (void)ignored;
}

[[noreturn]] void child_exec(const ChildPlan& plan) {
  ::setsid();  // own session and process group: kill(0) / kill(-pgid) from inside never reach the host's
  const int n = static_cast<int>(plan.fds.size());
  for (int i = 0; i < n; ++i) {
    plan.moved[i] = ::fcntl(plan.fds[i], F_DUPFD, n);  // above the targets, so no dup2 below clobbers one
    if (plan.moved[i] < 0) { child_say("sandbox: out of file descriptors\n"); ::_exit(126); }
  }
  for (int i = 0; i < n; ++i) ::dup2(plan.moved[i], i);
  // Nothing else of the host process (sockets, other runs' pipes) may reach bwrap.
  if (::syscall(SYS_close_range, n, ~0U, 0) != 0)
    for (int fd = n; fd < 65536; ++fd) ::close(fd);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // ignored SIGPIPE etc. survive exec
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (const auto& [resource, value] : plan.limits)
    if (::setrlimit(resource, &value) != 0) { child_say("sandbox: setrlimit failed\n"); ::_exit(126); }
  if (plan.drop) {
    // Raw syscalls: glibc's wrappers would try to signal the parent's other threads.
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
        ::syscall(SYS_setresgid, plan.uid, plan.uid, plan.uid) != 0 ||
        ::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
      child_say("sandbox: dropping root privileges failed\n");
      ::_exit(126);
    }
  }
  // Set after the uid change, which clears it. If the caller dies, bwrap dies, and with it the namespace.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != plan.parent) ::_exit(126);
  ::execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  child_say("sandbox: cannot execute bwrap\n");
  ::_exit(127);
}

struct StatusLines {
  std::string pending;
  bool started = false;
  int step = -1;
  double step_began = 0, step_ended = -1;   // seconds since the run started
  void feed(const char* data, size_t n, double now) {
    pending.append(data, n);
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) {
      std::istringstream line(pending.substr(0, nl));
      std::string tag;
      int index = -1;
      line >> tag >> index;
      if (tag == "S") started = true;
      if (tag == "B" && index >= 0) { step = index; step_began = now; step_ended = -1; }
      if (tag == "E" && index == step) step_ended = now;
    }
  }
};

SandboxResult run_impl(const SandboxSpec& spec, const Backend& backend) {
  SandboxResult result;
  if (std::string problem = spec_problem(spec); !problem.empty()) {
    result.output = "sandbox: " + problem;
    return result;
  }
  const SandboxLimits& lim = spec.limits;
  auto [out_r, out_w] = make_pipe();
  auto [st_r, st_w] = make_pipe();
  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::vector<Fd> file_fds;
  std::vector<std::pair<int, std::string>> file_args;   // fd number inside bwrap → work-dir path
  ChildPlan plan;
  plan.fds = {devnull.get(), out_w.get(), out_w.get(), st_w.get()};
  for (const auto& [path, data] : spec.files) {
    file_fds.push_back(memfd_with("fusellm-file", data));
    file_args.emplace_back(static_cast<int>(plan.fds.size()), path);
    plan.fds.push_back(file_fds.back().get());
  }
  Fd driver = memfd_with("fusellm-driver", driver_script(spec));
  const int driver_fd = static_cast<int>(plan.fds.size());
  plan.fds.push_back(driver.get());
  Fd shell = memfd_with("fusellm-sh", shell_binary());
  const int shell_fd = static_cast<int>(plan.fds.size());
  plan.fds.push_back(shell.get());
  plan.moved.resize(plan.fds.size());

  std::optional<UidSlot> slot;
  // The sandbox's own tasks are not the program's budget: outer bwrap, the driver, and `timeout` for steps
  // that have their own limit.
  bool any_timeout = false;
  for (const auto& step : spec.steps) any_timeout = any_timeout || step.timeout_s > 0;
  int64_t nproc = lim.processes + 2 + (any_timeout ? 1 : 0);
  const UidPlan uids = uid_plan();
  if (!uids.refusal.empty()) fail("sandbox: {}", uids.refusal);
  if (uids.drop) {
    slot.emplace();
    plan.drop = true;
    plan.uid = slot->uid();
  } else {
    // Without root the run keeps our uid, and RLIMIT_NPROC counts all of this user's tasks on the host:
    // allow what the user runs now plus the run's budget (approximate: the user's count moves meanwhile).
    nproc += count_tasks_of(::getuid());
  }
  auto limit = [&plan](int resource, int64_t soft, int64_t hard) {
    rlimit now{};
    rlimit want{static_cast<rlim_t>(std::max<int64_t>(soft, 0)),
                static_cast<rlim_t>(std::max<int64_t>(hard, 0))};
    // Never above our own hard limit: raising it needs privileges, and a lower one already binds.
    if (::getrlimit(resource, &now) == 0 && now.rlim_max != RLIM_INFINITY) {
      want.rlim_max = std::min(want.rlim_max, now.rlim_max);
      want.rlim_cur = std::min(want.rlim_cur, want.rlim_max);
    }
    plan.limits.push_back({resource, want});
  };
  // RLIMIT_CPU counts whole seconds: SIGXCPU at the soft limit, SIGKILL one second later if it is caught.
  const int64_t cpu = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(lim.cpu_s)));
  limit(RLIMIT_CPU, cpu, cpu + 1);
  limit(RLIMIT_AS, lim.address_space, lim.address_space);
  limit(RLIMIT_NPROC, nproc, nproc);
  // bwrap writes the shell's copy under this limit too: never below that copy's size.
  const int64_t fsize = std::max<int64_t>(lim.file_size, static_cast<int64_t>(shell_binary().size()));
  limit(RLIMIT_FSIZE, fsize, fsize);
  // bwrap needs a few fds during setup, and the memfds it reads the files from.
  const int64_t nofile = std::max<int64_t>(lim.open_files, static_cast<int64_t>(plan.fds.size()) + 16);
  limit(RLIMIT_NOFILE, nofile, nofile);
  limit(RLIMIT_CORE, 0, 0);

  std::vector<std::string> args = bwrap_args(spec, backend, file_args, driver_fd, shell_fd);
  std::string env_path = "PATH=/usr/bin:/bin";
  for (auto& s : args) plan.argv.push_back(s.data());
  plan.argv.push_back(nullptr);
  plan.envp = {env_path.data(), nullptr};
  plan.parent = ::getpid();
  spdlog::debug("sandbox: {} step(s), {} file(s), uid {}", spec.steps.size(), spec.files.size(),
                plan.drop ? plan.uid : ::getuid());

  const auto t0 = Clock::now();
  auto since = [&t0] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  // A raw clone (fork semantics) rather than fork(): glibc's fork runs the process's atfork handlers, and
  // OpenBLAS's (blas_thread_shutdown_) deadlocks when two pool threads fork at once — and would stop
  // LibTorch's BLAS threads on every program. The child only makes async-signal-safe system calls.
  const pid_t child = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (child < 0) fail("sandbox: fork: {}", std::strerror(errno));
  if (child == 0) child_exec(plan);
  out_w.reset();
  st_w.reset();
  file_fds.clear();
  driver.reset();
  shell.reset();
  devnull.reset();

  Fd child_fd = pidfd_open(child);
  StatusLines status;
  bool out_open = true, st_open = true, exited = false;
  std::optional<SandboxStatus> killed_for;
  double killed_at = 0;
  Fd driver_pidfd;
  pid_t driver_pid = -1;
  double unreaped_cpu_s = 0;
  const size_t kept = static_cast<size_t>(std::max<int64_t>(lim.output_kept, 0));
  char buf[65536];

  auto kill_run = [&](SandboxStatus why) {
    killed_for = why;
    killed_at = since();
    // Kill the namespace's PID 1 (the driver): the kernel then kills the rest, bwrap reaps it and exits.
    // Killing bwrap first would orphan the driver: its descendants' CPU time and death would go unseen.
    driver_pid = find_child_of(child);
    if (driver_pid > 0) {
      driver_pidfd = pidfd_open(driver_pid);
      if (parent_of(driver_pid) == child) {  // not a reused pid
        unreaped_cpu_s = namespace_cpu_s(driver_pid);
        pidfd_kill(driver_pidfd, driver_pid);
      }
    } else {
      ::kill(-child, SIGKILL);  // still setting up: no namespace yet, bwrap's group is all there is
    }
  };

  while (out_open || st_open || !exited) {
    const double now = since();
    if (!killed_for && !exited && now >= lim.wall_s) kill_run(SandboxStatus::timed_out);
    if (killed_for && !exited && now >= killed_at + kKillGraceS) ::kill(-child, SIGKILL);  // last resort
    if (exited && now >= std::max(killed_at, lim.wall_s) + 2 * kKillGraceS) break;  // a pipe end leaked
    pollfd fds[3];
    nfds_t nfds = 0;
    if (out_open) fds[nfds++] = {out_r.get(), POLLIN, 0};
    if (st_open) fds[nfds++] = {st_r.get(), POLLIN, 0};
    const bool watch_child = !exited && child_fd.get() >= 0;
    if (watch_child) fds[nfds++] = {child_fd.get(), POLLIN, 0};
    double wait_s = killed_for ? killed_at + kKillGraceS - now : lim.wall_s - now;
    if (child_fd.get() < 0 || exited) wait_s = std::min(wait_s, 0.02);  // no pidfd: check waitid often
    const int timeout_ms = static_cast<int>(std::clamp(wait_s * 1000, 1.0, 1000.0));
    if (::poll(fds, nfds, timeout_ms) < 0 && errno != EINTR) fail("sandbox: poll: {}", std::strerror(errno));
    for (nfds_t i = 0; i < nfds; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (watch_child && fds[i].fd == child_fd.get()) { exited = true; continue; }
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (fds[i].fd == st_r.get()) {
        if (n <= 0) st_open = false;
        else status.feed(buf, static_cast<size_t>(n), since());
        continue;
      }
      if (n <= 0) { out_open = false; continue; }
      if (killed_for) continue;  // draining what was written before the kill
      result.output_bytes += n;
      if (result.output.size() < kept)
        result.output.append(buf, std::min(static_cast<size_t>(n), kept - result.output.size()));
      if (result.output_bytes > lim.output_bytes) kill_run(SandboxStatus::output_capped);
    }
    if (!exited && child_fd.get() < 0) {
      siginfo_t info{};
      exited = ::waitid(P_PID, child, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == child;
    }
  }

  int wstatus = 0;
  rusage usage{};
  pid_t reaped;
  while ((reaped = ::wait4(child, &wstatus, 0, &usage)) < 0 && errno == EINTR) {
  }
  if (reaped != child) {
    // SIGCHLD set to SIG_IGN makes the kernel reap children itself: no status, no rusage to report.
    result.output = fmt::format("sandbox: cannot reap bwrap ({}); is SIGCHLD ignored?", std::strerror(errno));
    return result;
  }
  if (driver_pidfd.get() >= 0) {
    // Only when bwrap had to be killed itself: the orphaned driver's death (and with it the namespace's)
    // is then asynchronous; its pidfd turns readable once it has finished dying.
    pollfd p = {driver_pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) == 0) spdlog::warn("sandbox: PID namespace of pid {} still dying", driver_pid);
  }
  result.wall_s = since();
  // What ended normally was reaped below bwrap (the driver reaps orphans as PID 1), so bwrap's rusage has
  // it; what a kill ended was sampled just before. Missing: processes still running when the driver exits
  // on its own (typically sleeping leftovers), autoreaped by the kernel as the namespace goes away.
  result.cpu_s = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                 (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6 + unreaped_cpu_s;
  result.step = status.step;
  if (killed_for) {
    result.status = *killed_for;
    result.signal = SIGKILL;
    return result;
  }
  if (!status.started) {
    result.status = SandboxStatus::setup_error;  // bwrap's message is what came out on stderr
    if (result.output.empty()) result.output = fmt::format("sandbox: bwrap exited with status {}", wstatus);
    return result;
  }
  const int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  if (code == 0) {
    result.status = SandboxStatus::ok;
    result.step = static_cast<int>(spec.steps.size()) - 1;
    result.exit_code = 0;
    return result;
  }
  const double timeout = result.step >= 0 && result.step < static_cast<int>(spec.steps.size())
                             ? spec.steps[result.step].timeout_s : 0;
  const double took = (status.step_ended >= 0 ? status.step_ended : result.wall_s) - status.step_began;
  if (code == 128 + SIGKILL && timeout > 0 && took >= 0.95 * timeout - 0.01) {
    // `timeout -s KILL` dies with its child (exit 137 either way): a SIGKILL at the step's deadline is it.
    result.status = SandboxStatus::timed_out;
    result.signal = SIGKILL;
  } else if (code > 128 && code <= 128 + 64) {
    // sh reports a signal as 128+n; a program that itself exits 129..192 is reported as signaled too.
    result.status = SandboxStatus::signaled;
    result.signal = code - 128;
  } else {
    result.status = SandboxStatus::failed;
    result.exit_code = code;
  }
  return result;
}

std::string sysctl_hint() {
  auto value = [](const char* path) -> std::optional<std::string> {
    std::ifstream in(path);
    std::string v;
    if (!(in >> v)) return std::nullopt;
    return v;
  };
  std::vector<std::string> hints;
  if (value("/proc/sys/kernel/unprivileged_userns_clone") == std::optional<std::string>("0"))
    hints.push_back("sysctl -w kernel.unprivileged_userns_clone=1 (Debian kernels; it is 0 here)");
  if (value("/proc/sys/user/max_user_namespaces") == std::optional<std::string>("0"))
    hints.push_back("sysctl -w user.max_user_namespaces=15000 (it is 0 here)");
  if (value("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == std::optional<std::string>("1"))
    hints.push_back("sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu's AppArmor; "
                    "it is 1 here)");
  if (hints.empty())
    return "unprivileged user namespaces seem disabled; depending on the system: sysctl -w "
           "kernel.unprivileged_userns_clone=1 (Debian kernels), sysctl -w user.max_user_namespaces=15000, or "
           "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu)";
  std::string s = "unprivileged user namespaces are disabled; run ";
  for (size_t i = 0; i < hints.size(); ++i) s += (i ? " and " : "") + hints[i];
  return s;
}

struct Probe {
  std::optional<std::string> why;
  Backend backend;
};

Probe probe(const std::string& bwrap) {
  Probe p;
  p.backend.bwrap = bwrap;
  if (::access(bwrap.c_str(), X_OK) != 0) {
    p.why = fmt::format("bubblewrap not found at '{}' ({}); install the 'bubblewrap' package or point "
                        "FUSELLM_BWRAP at it", bwrap, std::strerror(errno));
    return p;
  }
  SandboxSpec spec;
  spec.steps = {SandboxStep{{"/bin/true"}, 0}};
  spec.limits.wall_s = 20;
  SandboxResult r;
  try {
    r = run_impl(spec, p.backend);
    if (r.status != SandboxStatus::ok && r.output.find("disable-userns") != std::string::npos) {
      p.backend.disable_userns = false;  // bwrap older than 0.8
      r = run_impl(spec, p.backend);
    }
  } catch (const std::exception& e) {
    r.status = SandboxStatus::setup_error;
    r.output = e.what();
  }
  if (r.status == SandboxStatus::ok) return p;
  std::string line = r.output.substr(0, r.output.find('\n'));
  p.why = fmt::format("bubblewrap at '{}' cannot create a sandbox ({}: {})", bwrap, to_string(r.status), line);
  const bool from_bwrap = line.rfind("bwrap:", 0) == 0;
  for (const char* sign : {"namespace", "uid map", "not permitted", "Permission denied"})
    if (from_bwrap && line.find(sign) != std::string::npos) { *p.why += "; " + sysctl_hint(); break; }
  return p;
}

const Probe& cached_probe() {
  const char* env = std::getenv("FUSELLM_BWRAP");
  const std::string bwrap = env && *env ? env : "/usr/bin/bwrap";
  // Keyed by path (not one std::call_once) so that pointing FUSELLM_BWRAP elsewhere is probed afresh;
  // the lock also makes concurrent first callers wait for one probe instead of racing several.
  static std::mutex mutex;
  static std::map<std::string, Probe> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(bwrap);
  if (it == cache.end()) it = cache.emplace(bwrap, probe(bwrap)).first;
  return it->second;  // std::map nodes never move
}

}  // namespace

std::optional<std::string> sandbox_unavailable() { return cached_probe().why; }

SandboxResult run_sandboxed(const SandboxSpec& spec) {
  const Probe& p = cached_probe();
  if (p.why) throw Error(*p.why);
  try {
    return run_impl(spec, p.backend);
  } catch (const Error& e) {
    // Host resources ran out (pipes, memfds, fork): this run could not start; the caller keeps going.
    SandboxResult r;
    r.output = e.what();
    spdlog::debug("{}", e.what());
    return r;
  }
}

}  // namespace fusellm::eval
