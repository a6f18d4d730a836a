#pragma once
// Runs untrusted programs (a model's generated code plus the benchmark's tests) so that nothing escapes:
// bubblewrap (Debian's `bwrap`) puts each run in new user, PID, IPC, UTS, cgroup and network namespaces
// with read-only binds of the toolchains, a fresh size-capped tmpfs as the work dir, no home, no host /proc;
// rlimits cap CPU time, address space, processes, file size and open files; a wall-time limit kills the
// whole PID namespace; output beyond a cap stops the run. A run is a list of steps (compile, then run)
// executed in order inside one sandbox by a small driver, so a compiler's output and the test's are
// reported per step. Nothing here knows about models or benchmarks.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace fusellm::eval {

struct SandboxLimits {
  double wall_s = 10;                  // whole run (all steps); the namespace is killed past it
  double cpu_s = 10;                   // RLIMIT_CPU per process (SIGXCPU/SIGKILL past it)
  int64_t address_space = 4LL << 30;   // RLIMIT_AS bytes per process (JVM and Go reserve a lot of it)
  int64_t processes = 64;              // RLIMIT_NPROC: processes + threads of the sandbox user
  int64_t file_size = 64LL << 20;      // RLIMIT_FSIZE bytes per file written
  int64_t open_files = 256;            // RLIMIT_NOFILE
  int64_t tmpfs_bytes = 256LL << 20;   // size of the work dir's tmpfs
  int64_t output_bytes = 1LL << 20;    // stdout+stderr over all steps; the run is killed past it
  int64_t output_kept = 2048;          // bytes of output kept in SandboxResult::output
};

struct SandboxStep {
  std::vector<std::string> argv;   // argv[0] resolved through PATH inside the sandbox
  double timeout_s = 0;            // this step's wall limit (0 = only the run's), reported as timed out
};

struct SandboxSpec {
  std::vector<SandboxStep> steps;                // run in order; a step that fails stops the run
  std::map<std::string, std::string> files;      // work-dir relative path → contents
  std::map<std::string, std::string> env;        // added to a minimal environment (PATH, HOME=/work, LANG)
  std::vector<std::string> ro_binds;             // extra host paths bound read-only at the same place
  SandboxLimits limits;
};

enum class SandboxStatus {
  ok,             // every step exited 0
  failed,         // a step exited non-zero (see step/exit_code)
  signaled,       // a step was killed by a signal (SIGSEGV, SIGXCPU, SIGKILL from RLIMIT_CPU...)
  timed_out,      // wall time (run or step) exceeded; the namespace was killed
  output_capped,  // output exceeded limits.output_bytes; the namespace was killed
  setup_error,    // the sandbox itself could not be started (message in `output`)
};
const char* to_string(SandboxStatus status);

struct SandboxResult {
  SandboxStatus status = SandboxStatus::setup_error;
  int step = -1;            // index of the last step that ran (the failing one when not ok)
  int exit_code = -1;       // that step's exit code (-1 when signaled or killed)
  int signal = 0;           // that step's terminating signal, 0 if none
  double wall_s = 0;        // whole run
  double cpu_s = 0;         // user + system CPU of everything that ran inside
  int64_t output_bytes = 0; // total stdout+stderr produced (counted up to the cap)
  std::string output;       // the first limits.output_kept bytes of stdout+stderr, steps in order
};

// Why this machine cannot sandbox, or nullopt when it can: bwrap missing, or unprivileged user namespaces
// disabled (the message names the sysctl to set). Probed once per process (a real bwrap run), cached.
std::optional<std::string> sandbox_unavailable();

// When the process runs as root, each concurrent run drops to its own host uid, kSandboxUidBase +
// (pid mod 2^22) · 512 + slot (slot: the smallest free one, 0..511), so that RLIMIT_NPROC limits exactly
// that run, also beside other fusellm processes; inside the sandbox it is uid 65534. Tests and admins can
// find sandboxed processes by it: every uid in [kSandboxUidBase, kSandboxUidBase + kSandboxUidSpan).
inline constexpr uint32_t kSandboxUidBase = 2000000000;
inline constexpr uint32_t kSandboxUidSpan = 1u << 31;

// Runs one spec. Thread-safe; blocks until the run is over and everything it started is gone.
// Throws fusellm::Error only when the sandbox is unavailable (sandbox_unavailable()'s message).
SandboxResult run_sandboxed(const SandboxSpec& spec);

// A fixed pool of threads running specs as they are submitted (programs run while the model generates).
class ExecutionPool {
 public:
  explicit ExecutionPool(int workers);   // workers <= 0: one per CPU
  ~ExecutionPool();                      // waits for everything submitted
  ExecutionPool(const ExecutionPool&) = delete;
  ExecutionPool& operator=(const ExecutionPool&) = delete;
  // `done` is called on a pool thread with the result; it must be thread-safe.
  void submit(SandboxSpec spec, std::function<void(SandboxResult)> done);
  void wait();                           // until every submitted spec's `done` has returned
  int workers() const { return static_cast<int>(threads_.size()); }

 private:
  void work();
  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<std::pair<SandboxSpec, std::function<void(SandboxResult)>>> queue_;
  int busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace fusellm::eval
