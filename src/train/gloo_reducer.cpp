// The c10d process group (Gloo, or NCCL for CUDA gradients) and the bucketed gradient all-reduce on it.
#include "fusellm/train/gloo_reducer.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "fusellm/train/nccl_group.hpp"
#ifdef FUSELLM_NCCL_GROUP
#include <c10/cuda/CUDAFunctions.h>

#include <cstdlib>
#endif

#include "fusellm/util/error.hpp"

namespace fusellm::train {

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

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
  ProcessGroupReducerImpl(const RankInfo& info, const ReducerOptions& options) : info_(info), options_(options) {
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
  }

  int rank() const override { return info_.rank; }
  int world_size() const override { return info_.world_size; }
  const char* backend() const override { return group_.backend; }

  void average(const std::vector<at::Tensor>& grads) override {
    guarded("all-reduce of gradients",
            [&] { allreduce_average(grads, options_.bucket_bytes, info_.world_size, group_.allreduce); });
  }

  void begin_last_backward(const std::vector<at::Tensor>& params) override {
    if (overlapped_) overlapped_->begin(params);
  }

  void finish(const std::vector<at::Tensor>& params) override {
    if (!overlapped_) return GradientReducer::finish(params);
    guarded("all-reduce of gradients", [&] { overlapped_->finish(); });
  }

  OverlapStats overlap_stats() const override { return overlapped_ ? overlapped_->stats() : OverlapStats{}; }
  std::shared_ptr<Collectives> collectives() const override { return group_.collectives; }

  std::vector<double> sum(std::vector<double> values) override {
    std::vector<at::Tensor> t{at::tensor(values, at::kDouble).to(options_.device)};
    guarded("all-reduce of metrics", [&] { group_.allreduce(t)->wait(); });
    const at::Tensor summed = t[0].cpu();
    std::copy(summed.data_ptr<double>(), summed.data_ptr<double>() + summed.numel(), values.begin());
    return values;
  }

  // An all-reduce rather than the group's barrier(): NCCL's barrier has to guess the device.
  void barrier() override {
    std::vector<at::Tensor> t{at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(options_.device))};
    guarded("barrier", [&] {
      group_.allreduce(t)->wait();
      (void)t[0].item<float>();  // on a GPU, wait() only orders streams
    });
  }

 private:
  template <typename F>
  void guarded(const char* what, F&& body) {
    try {
      body();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail("data parallel: rank {}/{}: {} failed (another rank died or timed out?): {}", info_.rank,
           info_.world_size, what, first_line(e.what()));
    }
  }

  RankInfo info_;
  ReducerOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  Group group_{"none", nullptr};
  std::unique_ptr<OverlappedGradReduce> overlapped_;
};

}  // namespace

std::shared_ptr<ProcessGroupReducer> make_process_group_reducer(const RankInfo& rank, const ReducerOptions& options) {
  return std::make_shared<ProcessGroupReducerImpl>(rank, options);
}

}  // namespace fusellm::train
