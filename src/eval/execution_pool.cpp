// ExecutionPool: a fixed set of threads taking sandbox runs off a FIFO queue, so programs run while the
// model keeps generating. A run blocks its thread for the program's whole wall time, which is why the
// pool size, not the CPU count alone, bounds how many sandboxes exist at once.
#include <spdlog/spdlog.h>

#include <exception>

#include "fusellm/eval/sandbox.hpp"

namespace fusellm::eval {

ExecutionPool::ExecutionPool(int workers) {
  if (workers <= 0) workers = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  threads_.reserve(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
}

ExecutionPool::~ExecutionPool() {
  wait();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ExecutionPool::submit(SandboxSpec spec, std::function<void(SandboxResult)> done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.emplace_back(std::move(spec), std::move(done));
  }
  wake_.notify_one();
}

void ExecutionPool::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [this] { return queue_.empty() && busy_ == 0; });
}

void ExecutionPool::work() {
  for (;;) {
    std::pair<SandboxSpec, std::function<void(SandboxResult)>> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;  // under the same lock as the pop, so wait() never sees "empty and idle" in between
    }
    SandboxResult result;
    try {
      result = run_sandboxed(job.first);
    } catch (const std::exception& e) {
      // An unavailable sandbox (or anything else) must not take the process down with this thread.
      spdlog::debug("execution pool: run failed: {}", e.what());
      result = SandboxResult{};
      result.status = SandboxStatus::setup_error;
      result.output = e.what();
    } catch (...) {
      spdlog::debug("execution pool: run failed with a non-std exception");
      result = SandboxResult{};
      result.output = "execution pool: the run threw a non-std exception";
    }
    try {
      if (job.second) job.second(std::move(result));
    } catch (const std::exception& e) {
      spdlog::warn("execution pool: result callback threw: {}", e.what());
    } catch (...) {
      spdlog::warn("execution pool: result callback threw a non-std exception");
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --busy_;
    }
    idle_.notify_all();
  }
}

}  // namespace fusellm::eval
