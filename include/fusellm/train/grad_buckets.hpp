#pragma once
// Bucketed gradient all-reduce, optionally overlapped with backward. Gradients are grouped into buckets
// (consecutive tensors of one dtype, about bucket_bytes each) and each bucket is flattened into one
// tensor for one collective. With overlap, hooks on the parameters' gradient accumulators report each
// gradient final during the backward of a step's last micro-batch; once every gradient of a bucket is,
// the bucket's all-reduce starts, asynchronously, while backward goes on. Buckets follow reverse
// parameter order (backward produces the last layers' gradients first) and start strictly in bucket
// order: every rank must issue the same collectives in the same order.
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "fusellm/train/grad_hooks.hpp"

namespace fusellm::train {

// Starts an in-place sum all-reduce of tensors[0] over all ranks.
using AllReduceLauncher = std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>& tensors)>;

// [begin, end) index ranges over `tensors`: consecutive tensors of one dtype whose bytes add up to at
// most bucket_bytes (a tensor bigger than that gets a bucket of its own).
std::vector<std::pair<size_t, size_t>> plan_buckets(const std::vector<at::Tensor>& tensors, size_t bucket_bytes);

// Sums `grads` (in place) over ranks bucket by bucket and divides by world_size; one collective in
// flight at a time. The non-overlapped path.
void allreduce_average(const std::vector<at::Tensor>& grads, size_t bucket_bytes, int world_size,
                       const AllReduceLauncher& launch);

struct OverlapStats {
  int64_t buckets = 0;               // all-reduces of the latest step
  int64_t launched_in_backward = 0;  // of those, started by gradient hooks before backward returned
};

class OverlappedGradReduce {
 public:
  OverlappedGradReduce(AllReduceLauncher launch, size_t bucket_bytes, int world_size);
  ~OverlappedGradReduce();
  OverlappedGradReduce(const OverlappedGradReduce&) = delete;
  OverlappedGradReduce& operator=(const OverlappedGradReduce&) = delete;

  // Call right before the backward whose gradients are final. Installs the hooks the first time (and
  // again if `params` changed).
  void begin(const std::vector<at::Tensor>& params);
  // Call after that backward: starts the buckets backward left (parameters whose gradient never came
  // count as zero), waits for all, and writes the averages back into the gradients. A parameter with no
  // gradient here gets one if any rank had a non-zero one; with none anywhere it stays without, as in one
  // process. Throws what a launch or a wait threw.
  void finish();
  OverlapStats stats() const;

 private:
  void on_gradient_final(size_t param_index);  // from the autograd engine's thread
  void launch_ready_buckets(bool in_backward);  // with mutex_ held
  void launch(size_t bucket, bool in_backward);

  AllReduceLauncher launch_;
  size_t bucket_bytes_;
  int world_size_;

  // Layout, fixed while the parameters stay the same: params_ in reverse order, bucket ranges over it.
  std::vector<at::Tensor> params_;
  std::vector<std::pair<size_t, size_t>> buckets_;
  std::vector<size_t> bucket_of_;
  GradientFinalHooks hooks_;

  // State of the current step.
  mutable std::mutex mutex_;
  bool armed_ = false;
  std::vector<char> final_;
  std::vector<size_t> pending_;                  // per bucket: gradients not final yet
  size_t next_bucket_ = 0;                       // buckets start in order
  std::vector<std::vector<at::Tensor>> flat_;    // per bucket: the flattened tensor being reduced
  std::vector<c10::intrusive_ptr<c10d::Work>> work_;
  std::vector<char> had_grad_;                   // per parameter, when its bucket was flattened
  std::exception_ptr error_;
  bool accumulated_twice_ = false;
  OverlapStats stats_;
};

}  // namespace fusellm::train
