// The Gloo process group and bucketed gradient all-reduce.
#include "fusellm/train/gloo_reducer.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "fusellm/util/error.hpp"

namespace fusellm::train {

namespace {

class GlooReducer : public GradientReducer {
 public:
  GlooReducer(const RankInfo& info, std::chrono::seconds timeout, size_t bucket_bytes)
      : info_(info), bucket_bytes_(bucket_bytes) {
    FUSELLM_CHECK(!info.master_addr.empty() && info.master_port > 0,
                  "data parallel: WORLD_SIZE={} but MASTER_ADDR/MASTER_PORT are not set", info.world_size);
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(info.master_port);
    store_options.isServer = info.rank == 0;
    store_options.numWorkers = static_cast<size_t>(info.world_size);
    store_options.timeout = timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(info.master_addr, store_options);
      auto options = c10d::ProcessGroupGloo::Options::create();
      options->timeout = timeout;
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(info.master_addr));
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, info.rank, info.world_size, options);
    } catch (const std::exception& e) {
      fail("data parallel: rank {}/{}: cannot join the process group at {}:{} within {} s: {}", info.rank,
           info.world_size, info.master_addr, info.master_port, timeout.count(), first_line(e.what()));
    }
  }
  int rank() const override { return info_.rank; }
  int world_size() const override { return info_.world_size; }

  void average(const std::vector<at::Tensor>& grads) override {
    at::NoGradGuard no_grad;
    size_t i = 0;
    while (i < grads.size()) {  // one bucket: consecutive gradients of one dtype up to bucket_bytes
      size_t j = i, bytes = 0;
      while (j < grads.size() && grads[j].scalar_type() == grads[i].scalar_type() &&
             (j == i || bytes + grads[j].nbytes() <= bucket_bytes_))
        bytes += grads[j++].nbytes();
      std::vector<at::Tensor> flat_parts;
      for (size_t k = i; k < j; ++k) flat_parts.push_back(grads[k].reshape({-1}));
      std::vector<at::Tensor> bucket{at::cat(flat_parts)};
      run("all-reduce of gradients", [&] { return group_->allreduce(bucket); });
      bucket[0].div_(static_cast<double>(info_.world_size));
      int64_t offset = 0;
      for (size_t k = i; k < j; ++k) {
        const int64_t n = grads[k].numel();
        grads[k].copy_(bucket[0].narrow(0, offset, n).view(grads[k].sizes()));
        offset += n;
      }
      i = j;
    }
  }

  double sum(double value) override {
    std::vector<at::Tensor> t{at::full({1}, value, at::kDouble)};
    run("all-reduce of metrics", [&] { return group_->allreduce(t); });
    return t[0].item<double>();
  }

  void barrier() override {
    run("barrier", [&] { return group_->barrier(); });
  }

 private:
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
  template <typename F>
  void run(const char* what, F&& start) {
    try {
      auto work = start();
      work->wait();
    } catch (const std::exception& e) {
      fail("data parallel: rank {}/{}: {} failed (another rank died or timed out?): {}", info_.rank,
           info_.world_size, what, first_line(e.what()));
    }
  }

  RankInfo info_;
  size_t bucket_bytes_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

std::shared_ptr<GradientReducer> make_gloo_reducer(const RankInfo& rank, std::chrono::seconds timeout,
                                                   size_t bucket_bytes) {
  return std::make_shared<GlooReducer>(rank, timeout, bucket_bytes);
}

}  // namespace fusellm::train
