// Bucketed all-reduce of gradients and its overlap with backward through gradient-accumulator hooks.
#include "fusellm/train/grad_buckets.hpp"

#include <unordered_set>

#include "fusellm/util/error.hpp"

namespace fusellm::train {

std::vector<std::pair<size_t, size_t>> plan_buckets(const std::vector<at::Tensor>& tensors, size_t bucket_bytes) {
  std::vector<std::pair<size_t, size_t>> ranges;
  size_t i = 0;
  while (i < tensors.size()) {
    size_t j = i, bytes = 0;
    while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
           tensors[j].device() == tensors[i].device() && (j == i || bytes + tensors[j].nbytes() <= bucket_bytes))
      bytes += tensors[j++].nbytes();
    ranges.emplace_back(i, j);
    i = j;
  }
  return ranges;
}

namespace {

at::Tensor flatten(const std::vector<at::Tensor>& parts) {
  std::vector<at::Tensor> flat;
  flat.reserve(parts.size());
  for (const auto& t : parts) flat.push_back(t.reshape({-1}));
  return at::cat(flat);
}

}  // namespace

void allreduce_average(const std::vector<at::Tensor>& grads, size_t bucket_bytes, int world_size,
                       const AllReduceLauncher& launch) {
  at::NoGradGuard no_grad;
  for (const auto& [begin, end] : plan_buckets(grads, bucket_bytes)) {
    std::vector<at::Tensor> bucket{flatten({grads.begin() + begin, grads.begin() + end})};
    launch(bucket)->wait();
    bucket[0].div_(static_cast<double>(world_size));
    int64_t offset = 0;
    for (size_t k = begin; k < end; ++k) {
      const int64_t n = grads[k].numel();
      grads[k].copy_(bucket[0].narrow(0, offset, n).view(grads[k].sizes()));
      offset += n;
    }
  }
}

OverlappedGradReduce::OverlappedGradReduce(AllReduceLauncher launch, size_t bucket_bytes, int world_size)
    : launch_(std::move(launch)), bucket_bytes_(bucket_bytes), world_size_(world_size) {}

OverlappedGradReduce::~OverlappedGradReduce() { hooks_.remove(); }

void OverlappedGradReduce::begin(const std::vector<at::Tensor>& params) {
  // Reverse order without duplicates (a tensor listed twice has one accumulator and one gradient).
  std::vector<at::Tensor> order;
  std::unordered_set<const void*> seen;
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (it->requires_grad() && seen.insert(it->unsafeGetTensorImpl()).second) order.push_back(*it);
  bool same = order.size() == params_.size();
  for (size_t i = 0; same && i < order.size(); ++i) same = order[i].is_same(params_[i]);
  if (!same) {
    params_ = std::move(order);
    buckets_ = plan_buckets(params_, bucket_bytes_);
    bucket_of_.assign(params_.size(), 0);
    for (size_t b = 0; b < buckets_.size(); ++b)
      for (size_t i = buckets_[b].first; i < buckets_[b].second; ++i) bucket_of_[i] = b;
    hooks_.install(params_, [this](size_t i) { on_gradient_final(i); });
  }
  std::lock_guard<std::mutex> lock(mutex_);
  final_.assign(params_.size(), 0);
  had_grad_.assign(params_.size(), 0);
  pending_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].second - buckets_[b].first;
  next_bucket_ = 0;
  flat_.assign(buckets_.size(), {});
  work_.assign(buckets_.size(), {});
  error_ = nullptr;
  accumulated_twice_ = false;
  stats_ = {static_cast<int64_t>(buckets_.size()), 0};
  armed_ = true;
}

void OverlappedGradReduce::on_gradient_final(size_t i) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;  // earlier micro-batches only accumulate
  if (final_[i]) {      // a second accumulation in one backward: the launched bucket may be stale
    accumulated_twice_ = true;
    return;
  }
  final_[i] = 1;
  if (--pending_[bucket_of_[i]] == 0) launch_ready_buckets(true);
}

void OverlappedGradReduce::launch_ready_buckets(bool in_backward) {
  while (next_bucket_ < buckets_.size() && pending_[next_bucket_] == 0) launch(next_bucket_++, in_backward);
}

void OverlappedGradReduce::launch(size_t b, bool in_backward) {
  if (error_) return;  // an earlier launch failed: finish() reports it
  try {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    for (size_t i = buckets_[b].first; i < buckets_[b].second; ++i) {
      const at::Tensor& grad = params_[i].grad();
      had_grad_[i] = grad.defined();
      parts.push_back(grad.defined() ? grad : at::zeros_like(params_[i]));
    }
    flat_[b] = {flatten(parts)};
    work_[b] = launch_(flat_[b]);
    if (in_backward) ++stats_.launched_in_backward;
  } catch (...) {
    error_ = std::current_exception();
  }
}

void OverlappedGradReduce::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  armed_ = false;
  // Buckets holding a parameter without a gradient this backward start now: its gradient is whatever
  // earlier micro-batches accumulated, or zero.
  for (size_t b = next_bucket_; b < buckets_.size(); ++b) pending_[b] = 0;
  launch_ready_buckets(false);
  std::exception_ptr error = error_;
  lock.unlock();
  // Wait for every launched collective, even after an error, so none is left writing into freed memory.
  for (auto& work : work_) {
    if (!work) continue;
    try {
      work->wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  FUSELLM_CHECK(!accumulated_twice_,
                "gradient all-reduce: a parameter's gradient was accumulated twice in one backward (reentrant "
                "backward?), so an overlapped all-reduce may have sent a partial gradient; set "
                "train.overlap_comm to false");
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    at::Tensor flat = flat_[b][0].div_(static_cast<double>(world_size_));
    int64_t offset = 0;
    for (size_t i = buckets_[b].first; i < buckets_[b].second; ++i) {
      at::Tensor& param = params_[i];
      const int64_t n = param.numel();
      at::Tensor average = flat.narrow(0, offset, n).view(param.sizes());
      offset += n;
      if (had_grad_[i]) {
        param.mutable_grad().copy_(average);
      } else if (average.ne(0).any().item<bool>()) {  // same answer on every rank: the values are reduced
        param.mutable_grad() = average.clone();
      }
    }
  }
  flat_.assign(buckets_.size(), {});
  work_.assign(buckets_.size(), {});
}

OverlapStats OverlappedGradReduce::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace fusellm::train
