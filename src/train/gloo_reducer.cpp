// The c10d process group (Gloo, or NCCL for CUDA gradients) and the bucketed gradient all-reduce on it.
#include "fusellm/train/gloo_reducer.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "fusellm/train/nccl_group.hpp"
#ifdef FUSELLM_NCCL_GROUP
#include <c10/cuda/CUDAFunctions.h>

#include <cstdlib>
#endif

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fault_hooks.hpp"

namespace fusellm::train {

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Which ranks are alive, so that a failed collective can name the dead one. Every rank adds 1 to its own
// counter in the TCPStore once a second and reads everyone's; a counter that has not moved for a few seconds
// belongs to a dead (or hung) rank. The observations are kept, so they still answer after the store itself
// went away with rank 0. A rank that diagnosed the failure sets a flag before it leaves: its silence is not
// death. Costs 2·world store reads per rank per second.
class Liveness {
 public:
  Liveness(c10::intrusive_ptr<c10d::Store> store, int rank, int world)
      : store_(std::move(store)), rank_(rank), world_(world), count_(size_t(world), -1), diagnosed_(size_t(world), false),
        changed_(size_t(world), Clock::now()) {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!stop_) {
        lock.unlock();
        const bool ok = beat_and_poll();
        lock.lock();
        if (!ok) {
          store_gone_ = true;
          break;
        }
        stopped_.wait_for(lock, std::chrono::seconds(1));
      }
    });
  }
  ~Liveness() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    stopped_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // "rank 2 stopped responding (dead or hung)", "rank 0 (which serves the TCPStore) is gone", or "".
  std::string describe_dead() {
    std::vector<int> dead;
    try {
      // Two readings 1.5 s apart: a live rank beats every second, so its counter must have moved.
      const std::vector<int64_t> before = read_counters("fusellm/alive/");
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      const std::vector<int64_t> after = read_counters("fusellm/alive/");
      const std::vector<int64_t> diagnosed = read_counters("fusellm/diagnosed/");
      for (int r = 0; r < world_; ++r)
        if (r != rank_ && after[size_t(r)] == before[size_t(r)] && diagnosed[size_t(r)] == 0) dead.push_back(r);
      std::lock_guard<std::mutex> lock(store_mutex_);
      store_->add("fusellm/diagnosed/" + std::to_string(rank_), 1);
    } catch (const std::exception&) {
      dead = suspects();  // the store went away meanwhile: what the heartbeat thread saw before that
      if (dead.empty()) return "rank 0 (which serves the TCPStore) is gone";
    }
    // Rank 0 serves the store: it stays (5 s at most) until every other live rank has diagnosed too, so
    // none of them mistakes rank 0's own exit for its death.
    for (int i = 0; rank_ == 0 && i < 50; ++i) {
      std::vector<int64_t> diagnosed;
      try {
        diagnosed = read_counters("fusellm/diagnosed/");
      } catch (const std::exception&) {
        break;
      }
      bool pending = false;
      for (int r = 1; r < world_; ++r)
        pending = pending || (diagnosed[size_t(r)] == 0 && std::find(dead.begin(), dead.end(), r) == dead.end());
      if (!pending) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (dead.empty()) return "";
    std::string list;
    for (int r : dead) list += (list.empty() ? "" : ", ") + std::to_string(r);
    return fmt::format("rank {} stopped responding (dead or hung)", list);
  }

 private:
  using Clock = std::chrono::steady_clock;

  std::vector<int> suspects() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<int> dead;
    for (int r = 0; r < world_; ++r)
      if (r != rank_ && !diagnosed_[size_t(r)] && last_poll_ - changed_[size_t(r)] >= std::chrono::milliseconds(1500))
        dead.push_back(r);
    return dead;
  }
  std::vector<int64_t> read_counters(const char* prefix) {
    std::lock_guard<std::mutex> lock(store_mutex_);
    std::vector<int64_t> values(static_cast<size_t>(world_));
    for (int r = 0; r < world_; ++r) values[size_t(r)] = store_->add(prefix + std::to_string(r), 0);
    return values;
  }
  bool beat_and_poll() {
    try {
      std::vector<int64_t> counts(static_cast<size_t>(world_));
      std::vector<bool> diagnosed(static_cast<size_t>(world_));
      {
        std::lock_guard<std::mutex> lock(store_mutex_);
        store_->add("fusellm/alive/" + std::to_string(rank_), 1);
        for (int r = 0; r < world_; ++r) {
          counts[size_t(r)] = store_->add("fusellm/alive/" + std::to_string(r), 0);
          diagnosed[size_t(r)] = store_->add("fusellm/diagnosed/" + std::to_string(r), 0) > 0;
        }
      }
      std::lock_guard<std::mutex> lock(mutex_);
      last_poll_ = Clock::now();
      for (size_t r = 0; r < counts.size(); ++r) {
        if (counts[r] != count_[r]) count_[r] = counts[r], changed_[r] = last_poll_;
        diagnosed_[r] = diagnosed[r];
      }
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  const int rank_, world_;
  std::mutex mutex_, store_mutex_;
  std::condition_variable stopped_;
  bool stop_ = false, store_gone_ = false;
  std::vector<int64_t> count_;
  std::vector<bool> diagnosed_;
  std::vector<Clock::time_point> changed_;
  Clock::time_point last_poll_ = Clock::now();
  std::thread thread_;
};

// Turns a failed collective into one line naming the operation and, when the heartbeats tell, the dead
// rank. Shared by the reducer and ZeRO's collectives, which outlive neither each other nor it.
class CollectiveGuard {
 public:
  explicit CollectiveGuard(const RankInfo& info) : info_(info) {}
  void watch(std::unique_ptr<Liveness> liveness) { liveness_ = std::move(liveness); }

  [[noreturn]] void report(const char* what, const std::exception& e) {
    const std::string cause = liveness_ ? liveness_->describe_dead() : "";
    if (!cause.empty())
      fail("data parallel: rank {}/{}: {} failed: {}: {}", info_.rank, info_.world_size, what, cause,
           first_line(e.what()));
    fail("data parallel: rank {}/{}: {} failed (another rank died or timed out?): {}", info_.rank,
         info_.world_size, what, first_line(e.what()));
  }
  template <typename F>
  auto guarded(const char* what, F&& body) -> decltype(body()) {
    try {
      return body();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      report(what, e);
    }
  }
  // Test hook FUSELLM_TRAIN_KILL_IN_COLLECTIVE=N: the Nth gradient reduction (an all-reduce, or ZeRO's
  // reduce-scatter) SIGKILLs this rank as it starts.
  void count_gradient_reduction() { maybe_kill_self("FUSELLM_TRAIN_KILL_IN_COLLECTIVE", ++gradient_reductions_); }

 private:
  RankInfo info_;
  std::unique_ptr<Liveness> liveness_;
  int64_t gradient_reductions_ = 0;
};

// ZeRO's collectives on the group, failing like the reducer's own: a backend error when a collective is
// issued or waited for becomes the guard's one-line report.
class GuardedCollectives : public Collectives {
 public:
  GuardedCollectives(std::shared_ptr<Collectives> inner, std::shared_ptr<CollectiveGuard> guard)
      : inner_(std::move(inner)), guard_(std::move(guard)) {}
  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  std::string describe() const override { return inner_->describe(); }
  PendingCollective all_reduce_sum(at::Tensor tensor) override {
    return guard("all-reduce (ZeRO)", [&] { return inner_->all_reduce_sum(tensor); });
  }
  PendingCollective reduce_scatter_sum(at::Tensor input, at::Tensor output) override {
    guard_->count_gradient_reduction();
    return guard("reduce-scatter of gradients", [&] { return inner_->reduce_scatter_sum(input, output); });
  }
  PendingCollective all_gather(at::Tensor chunk, at::Tensor output) override {
    return guard("all-gather of parameters", [&] { return inner_->all_gather(chunk, output); });
  }

 private:
  template <typename F>
  PendingCollective guard(const char* what, F&& issue) {
    PendingCollective pending = guard_->guarded(what, issue);
    pending.explain_failures([guard = guard_, what](const std::exception& e) { guard->report(what, e); });
    return pending;
  }

  std::shared_ptr<Collectives> inner_;
  std::shared_ptr<CollectiveGuard> guard_;
};

// The group's collectives as closures: ProcessGroupGloo derives from ProcessGroup in LibTorch 1.13 and
// from Backend in 2.x, and NCCL's is another class again; all of them start an all-reduce with
// allreduce(std::vector<at::Tensor>&) returning a c10d::Work.
struct Group {
  const char* backend;
  AllReduceLauncher allreduce;
  std::shared_ptr<Collectives> collectives;  // for ZeRO
};

Group make_gloo(const c10::intrusive_ptr<c10d::Store>& store, const RankInfo& info, std::chrono::seconds timeout,
                ReduceScatterEmulation emulation) {
  auto options = c10d::ProcessGroupGloo::Options::create();
  options->timeout = timeout;
  options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(info.master_addr));
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, info.rank, info.world_size, options);
  return {"gloo", [group](std::vector<at::Tensor>& t) { return group->allreduce(t); },
          make_gloo_collectives(group, info.rank, info.world_size, emulation)};
}

#ifdef FUSELLM_NCCL_GROUP
Group make_nccl(const c10::intrusive_ptr<c10d::Store>& store, const RankInfo& info, std::chrono::seconds timeout,
                at::Device device) {
  c10::cuda::set_device(device.index());
  // Blocking waits: a collective that does not finish within the timeout throws from wait() (reported
  // like Gloo's) instead of the watchdog tearing the process down. The launcher's setting wins.
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  setenv("NCCL_BLOCKING_WAIT", "1", 0);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, info.rank, info.world_size, options);
  return {"nccl", [group](std::vector<at::Tensor>& t) { return group->allreduce(t); },
          make_nccl_collectives(group, info.rank, info.world_size)};
}
#endif

class ProcessGroupReducerImpl : public ProcessGroupReducer {
 public:
  ProcessGroupReducerImpl(const RankInfo& info, const ReducerOptions& options)
      : info_(info), options_(options), guard_(std::make_shared<CollectiveGuard>(info)) {
    FUSELLM_CHECK(!info.master_addr.empty() && info.master_port > 0,
                  "data parallel: WORLD_SIZE={} but MASTER_ADDR/MASTER_PORT are not set", info.world_size);
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(info.master_port);
    store_options.isServer = info.rank == 0;
    store_options.numWorkers = static_cast<size_t>(info.world_size);
    store_options.timeout = options.timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(info.master_addr, store_options);
#ifdef FUSELLM_NCCL_GROUP
      if (options.device.is_cuda()) group_ = make_nccl(store_, info, options.timeout, options.device);
#endif
      if (!group_.allreduce) {
        FUSELLM_CHECK(!options.device.is_cuda(),
                      "data parallel: gradients on {} need NCCL, which this LibTorch build lacks",
                      options.device.str());
        group_ = make_gloo(store_, info, options.timeout, options.reduce_scatter);
      }
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail("data parallel: rank {}/{}: cannot join the process group at {}:{} within {} s: {}", info.rank,
           info.world_size, info.master_addr, info.master_port, options.timeout.count(), first_line(e.what()));
    }
    if (options.overlap)
      overlapped_ = std::make_unique<OverlappedGradReduce>(group_.allreduce, options.bucket_bytes, info.world_size);
    guard_->watch(std::make_unique<Liveness>(store_, info.rank, info.world_size));
    if (group_.collectives) collectives_ = std::make_shared<GuardedCollectives>(group_.collectives, guard_);
  }

  int rank() const override { return info_.rank; }
  int world_size() const override { return info_.world_size; }
  const char* backend() const override { return group_.backend; }

  void average(const std::vector<at::Tensor>& grads) override {
    guard_->count_gradient_reduction();
    guard_->guarded("all-reduce of gradients",
            [&] { allreduce_average(grads, options_.bucket_bytes, info_.world_size, group_.allreduce); });
  }

  void begin_last_backward(const std::vector<at::Tensor>& params) override {
    // Test hook: a rank dying in the middle of a step (forward done, before the last backward).
    maybe_kill_self("FUSELLM_TRAIN_KILL_IN_STEP", ++last_backwards_);
    if (overlapped_) overlapped_->begin(params);
  }

  void finish(const std::vector<at::Tensor>& params) override {
    if (!overlapped_) return GradientReducer::finish(params);
    // The hook fires here, with this step's bucket all-reduces already launched on the other ranks.
    guard_->count_gradient_reduction();
    guard_->guarded("all-reduce of gradients", [&] { overlapped_->finish(); });
  }

  OverlapStats overlap_stats() const override { return overlapped_ ? overlapped_->stats() : OverlapStats{}; }
  std::shared_ptr<Collectives> collectives() const override { return collectives_; }

  std::vector<double> sum(std::vector<double> values) override {
    std::vector<at::Tensor> t{at::tensor(values, at::kDouble).to(options_.device)};
    guard_->guarded("all-reduce of metrics", [&] { group_.allreduce(t)->wait(); });
    const at::Tensor summed = t[0].cpu();
    std::copy(summed.data_ptr<double>(), summed.data_ptr<double>() + summed.numel(), values.begin());
    return values;
  }

  // An all-reduce rather than the group's barrier(): NCCL's barrier has to guess the device.
  void barrier() override {
    std::vector<at::Tensor> t{at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(options_.device))};
    guard_->guarded("barrier", [&] {
      group_.allreduce(t)->wait();
      (void)t[0].item<float>();  // on a GPU, wait() only orders streams
    });
  }

 private:
  RankInfo info_;
  ReducerOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  Group group_{"none", nullptr, nullptr};
  std::unique_ptr<OverlappedGradReduce> overlapped_;
  std::shared_ptr<CollectiveGuard> guard_;
  std::shared_ptr<Collectives> collectives_;  // ZeRO's: group_.collectives behind guard_
  int64_t last_backwards_ = 0;
};

}  // namespace

std::shared_ptr<ProcessGroupReducer> make_process_group_reducer(const RankInfo& rank, const ReducerOptions& options) {
  return std::make_shared<ProcessGroupReducerImpl>(rank, options);
}

}  // namespace fusellm::train
