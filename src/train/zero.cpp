// ZeRO-1/2: bucketed flat parameter buffers, reduce-scatter of gradients as backward makes them,
// AdamW on the owned chunks, all-gather of the updated parameters.
#include "fusellm/train/zero.hpp"

#include <fmt/format.h>

#include <cmath>
#include <unordered_map>

#include "fusellm/util/error.hpp"

namespace fusellm::train {

struct ZeroOptimizer::Param {
  std::string name;
  size_t entry = 0;       // index in the model's NamedTensors
  at::Tensor tensor;      // the leaf, a view into its bucket's flat buffer
  int64_t numel = 0;
  bool decay = false;
  size_t bucket = 0;
  int64_t offset = 0;     // first element in the bucket
};

// The part of one parameter inside this rank's chunk of a bucket.
struct Segment {
  size_t param;
  int64_t param_offset, chunk_offset, length;
};

struct ZeroOptimizer::Bucket {
  size_t first = 0, last = 0;  // params_[first, last)
  int64_t numel = 0, chunk = 0;
  at::Tensor flat;             // [world × chunk], param dtype: the parameters live here
  at::Tensor master, exp_avg, exp_avg_sq, grad;  // [chunk], master dtype
  bool master_is_view = false;  // master is this rank's chunk of `flat` itself
  std::vector<Segment> owned;
};

struct ZeroOptimizer::InFlight {
  size_t bucket;
  at::Tensor recv;
  PendingCollective pending;
  int64_t bytes;
};

namespace {

at::Tensor own_chunk(const at::Tensor& flat, int64_t chunk, int rank) { return flat.narrow(0, rank * chunk, chunk); }

bool decays(const std::string& name, const at::Tensor& t) {
  return t.dim() >= 2 && name.find("norm") == std::string::npos;  // as AdamW (optimizer.cpp)
}

}  // namespace

ZeroOptimizer::ZeroOptimizer(io::NamedTensors& entries, std::shared_ptr<Collectives> collectives, ZeroOptions options)
    : coll_(std::move(collectives)), options_(options), rank_(coll_->rank()), world_(coll_->world_size()) {
  FUSELLM_CHECK(options_.stage == 1 || options_.stage == 2, "train.zero_stage: {} is not a sharded stage (1 or 2)",
                options_.stage);
  // Backward order, a tensor once, trainable floating-point tensors only.
  std::unordered_map<const void*, size_t> index_of;
  std::vector<std::pair<size_t, size_t>> duplicates;  // (entry, param) of a tensor listed twice
  std::vector<at::Tensor> originals;
  for (size_t e = entries.size(); e-- > 0;) {
    const at::Tensor& t = entries[e].second;
    if (!t.requires_grad() || !at::isFloatingType(t.scalar_type())) continue;
    auto [it, fresh] = index_of.emplace(t.unsafeGetTensorImpl(), params_.size());
    if (!fresh) {
      duplicates.emplace_back(e, it->second);
      continue;
    }
    Param p;
    p.name = entries[e].first;
    p.entry = e;
    p.numel = t.numel();
    p.decay = decays(p.name, t);
    params_.push_back(std::move(p));
    originals.push_back(t.detach());
  }
  FUSELLM_CHECK(!params_.empty(), "train.zero_stage {}: the model has no trainable parameters", options_.stage);
  const at::Device device = originals.front().device();
  const size_t elem = c10::elementSize(options_.master_dtype);

  for (size_t i = 0; i < params_.size();) {  // buckets of consecutive parameters, at least one each
    Bucket b;
    b.first = i;
    int64_t numel = 0;
    while (i < params_.size() && (i == b.first || size_t(numel + params_[i].numel) * elem <= options_.bucket_bytes)) {
      params_[i].bucket = buckets_.size();
      params_[i].offset = numel;
      numel += params_[i++].numel;
    }
    b.last = i;
    b.numel = numel;
    b.chunk = (numel + world_ - 1) / world_;
    buckets_.push_back(std::move(b));
  }

  at::NoGradGuard no_grad;
  const auto master_options = at::TensorOptions().dtype(options_.master_dtype).device(device);
  for (Bucket& b : buckets_) {
    b.flat = at::zeros({b.chunk * world_}, at::TensorOptions().dtype(options_.param_dtype).device(device));
    const int64_t lo = rank_ * b.chunk, hi = lo + b.chunk;
    for (size_t i = b.first; i < b.last; ++i) {
      Param& p = params_[i];
      at::Tensor slot = b.flat.narrow(0, p.offset, p.numel);
      slot.copy_(originals[i].reshape({-1}));
      p.tensor = slot.view(originals[i].sizes()).detach().requires_grad_(true);
      entries[p.entry].second = p.tensor;
      const int64_t begin = std::max(lo, p.offset), end = std::min(hi, p.offset + p.numel);
      if (begin < end) b.owned.push_back({i, begin - p.offset, begin - lo, end - begin});
    }
    b.master_is_view = options_.param_dtype == options_.master_dtype;
    if (b.master_is_view) {
      b.master = own_chunk(b.flat, b.chunk, rank_);
    } else {  // from the full-precision originals, not from their rounded copy in `flat`
      b.master = at::zeros({b.chunk}, master_options);
      for (const Segment& s : b.owned)
        b.master.narrow(0, s.chunk_offset, s.length)
            .copy_(originals[s.param].reshape({-1}).narrow(0, s.param_offset, s.length));
    }
    for (size_t i = b.first; i < b.last; ++i) originals[i] = at::Tensor();  // copied: let them go
    b.exp_avg = at::zeros({b.chunk}, master_options);
    b.exp_avg_sq = at::zeros({b.chunk}, master_options);
    b.grad = at::zeros({b.chunk}, master_options);
  }
  for (const auto& [entry, param] : duplicates) entries[entry].second = params_[param].tensor;
  had_grad_.assign(params_.size(), 0);
  if (options_.overlap) {
    std::vector<at::Tensor> leaves;
    for (const Param& p : params_) leaves.push_back(p.tensor);
    hooks_.install(leaves, [this](size_t i) { on_gradient_final(i); });
  }
}

ZeroOptimizer::~ZeroOptimizer() {
  hooks_.remove();
  for (auto& f : in_flight_) {
    try {
      f.pending.wait();
    } catch (...) {  // already failing: nothing is left to report it to
    }
  }
}

std::string ZeroOptimizer::describe() const {
  int64_t total = 0, owned = 0;
  for (const Bucket& b : buckets_) {
    total += b.numel;
    for (const Segment& s : b.owned) owned += s.length;
  }
  return fmt::format("ZeRO-{} over {} ranks: {} buckets, this rank owns {} of {} parameters; {}", options_.stage,
                     world_, buckets_.size(), owned, total, coll_->describe());
}

void ZeroOptimizer::begin_backward(bool last) {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = options_.stage == 2 || last;  // stage 1: earlier micro-batches accumulate full gradients
  if (!armed_) return;
  final_.assign(params_.size(), 0);
  pending_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].last - buckets_[b].first;
  next_bucket_ = 0;
  error_ = nullptr;
}

void ZeroOptimizer::on_gradient_final(size_t i) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;
  if (final_[i]) {  // its bucket may already be on its way without this second part
    if (!error_)
      error_ = std::make_exception_ptr(Error(fmt::format(
          "ZeRO: the gradient of {} was accumulated twice in one backward (reentrant backward?), so a "
          "reduce-scatter may have sent it incomplete; set train.overlap_comm to false", params_[i].name)));
    return;
  }
  final_[i] = 1;
  if (--pending_[params_[i].bucket] == 0) launch_ready(true);
}

void ZeroOptimizer::launch_ready(bool /*in_backward*/) {
  while (next_bucket_ < buckets_.size() && pending_[next_bucket_] == 0) launch(next_bucket_++);
}

void ZeroOptimizer::launch(size_t index) {
  if (error_) return;  // end_backward reports it
  try {
    at::NoGradGuard no_grad;
    const Bucket& b = buckets_[index];
    at::Tensor send = at::zeros({b.chunk * world_}, b.grad.options());
    for (size_t i = b.first; i < b.last; ++i) {
      Param& p = params_[i];
      const at::Tensor& g = p.tensor.grad();
      if (!g.defined()) continue;  // none on this rank: zeros
      send.narrow(0, p.offset, p.numel).copy_(g.reshape({-1}));
      had_grad_[i] = 1;
      p.tensor.mutable_grad() = at::Tensor();  // the full gradient is not kept: that is stage 2's saving
    }
    at::Tensor recv = at::empty({b.chunk}, b.grad.options());
    const int64_t bytes = (send.numel() + recv.numel()) * int64_t(send.element_size());
    comm_bytes_ += bytes;
    comm_peak_ = std::max(comm_peak_, comm_bytes_);
    in_flight_.push_back({index, recv, coll_->reduce_scatter_sum(send, recv), bytes});
    while (in_flight_.size() > size_t(std::max(1, options_.max_in_flight))) retire_oldest();
  } catch (...) {
    error_ = std::current_exception();
  }
}

void ZeroOptimizer::retire_oldest() {
  InFlight f = std::move(in_flight_.front());
  in_flight_.pop_front();
  comm_bytes_ -= f.bytes;
  f.pending.wait();
  at::NoGradGuard no_grad;
  buckets_[f.bucket].grad.add_(f.recv.div_(static_cast<double>(world_)));
}

void ZeroOptimizer::end_backward() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!armed_) return;
  armed_ = false;
  // Buckets with a parameter that got no gradient in this backward start now, in order.
  for (size_t b = next_bucket_; b < buckets_.size(); ++b) pending_[b] = 0;
  launch_ready(false);
  std::exception_ptr error = error_;
  while (!in_flight_.empty()) {
    try {
      retire_oldest();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

double ZeroOptimizer::clip_grad_norm(double max_norm) {
  at::NoGradGuard no_grad;
  double local = 0;
  for (const Bucket& b : buckets_) local += b.grad.to(at::kDouble).pow(2).sum().item<double>();
  at::Tensor total = at::full({1}, local, at::TensorOptions().dtype(at::kDouble).device(buckets_[0].grad.device()));
  coll_->all_reduce_sum(total).wait();
  const double norm = std::sqrt(total.item<double>());
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);  // as clip_grad_norm (optimizer.cpp)
    for (Bucket& b : buckets_) b.grad.mul_(scale);
  }
  return norm;
}

void ZeroOptimizer::step(double lr) {
  at::NoGradGuard no_grad;
  // A parameter no rank had a gradient for is not updated at all, as AdamW skips it in one process.
  at::Tensor flags = at::empty({int64_t(params_.size())}, at::TensorOptions().dtype(at::kDouble));
  for (size_t i = 0; i < params_.size(); ++i) flags[int64_t(i)] = double(had_grad_[i]);
  flags = flags.to(buckets_[0].grad.device());
  coll_->all_reduce_sum(flags).wait();
  flags = flags.cpu();
  const double* any = flags.data_ptr<double>();

  ++step_;
  const double bias1 = 1 - std::pow(options_.beta1, double(step_));
  const double bias2 = 1 - std::pow(options_.beta2, double(step_));
  for (Bucket& b : buckets_) {
    std::vector<std::pair<const Segment*, std::vector<at::Tensor>>> frozen;
    for (const Segment& s : b.owned)
      if (any[s.param] == 0)
        frozen.push_back({&s, {b.master.narrow(0, s.chunk_offset, s.length).clone(),
                               b.exp_avg.narrow(0, s.chunk_offset, s.length).clone(),
                               b.exp_avg_sq.narrow(0, s.chunk_offset, s.length).clone()}});
    if (options_.weight_decay != 0)
      for (const Segment& s : b.owned)
        if (params_[s.param].decay) b.master.narrow(0, s.chunk_offset, s.length).mul_(1 - lr * options_.weight_decay);
    b.exp_avg.mul_(options_.beta1).add_(b.grad, 1 - options_.beta1);
    b.exp_avg_sq.mul_(options_.beta2).addcmul_(b.grad, b.grad, 1 - options_.beta2);
    at::Tensor denom = (b.exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(options_.eps);
    b.master.addcdiv_(b.exp_avg, denom, -lr / bias1);
    for (auto& [s, saved] : frozen) {
      b.master.narrow(0, s->chunk_offset, s->length).copy_(saved[0]);
      b.exp_avg.narrow(0, s->chunk_offset, s->length).copy_(saved[1]);
      b.exp_avg_sq.narrow(0, s->chunk_offset, s->length).copy_(saved[2]);
    }
    if (!b.master_is_view) own_chunk(b.flat, b.chunk, rank_).copy_(b.master);
    b.grad.zero_();
  }
  gather_all();
  std::fill(had_grad_.begin(), had_grad_.end(), 0);
  for (Param& p : params_) p.tensor.mutable_grad() = at::Tensor();
}

void ZeroOptimizer::gather_all() {
  std::vector<PendingCollective> gathers;
  for (Bucket& b : buckets_) gathers.push_back(coll_->all_gather(own_chunk(b.flat, b.chunk, rank_), b.flat));
  std::exception_ptr error;
  for (auto& g : gathers) {
    try {
      g.wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

std::vector<OwnedSlice> ZeroOptimizer::owned_slices() const {
  std::vector<OwnedSlice> out;
  for (const Bucket& b : buckets_)
    for (const Segment& s : b.owned) out.push_back({params_[s.param].name, s.param_offset, s.length});
  return out;
}

io::NamedTensors ZeroOptimizer::state_slices() const {
  io::NamedTensors out;
  for (const Bucket& b : buckets_)
    for (const Segment& s : b.owned) {
      const std::string& name = params_[s.param].name;
      out.emplace_back("master." + name, b.master.narrow(0, s.chunk_offset, s.length));
      out.emplace_back("exp_avg." + name, b.exp_avg.narrow(0, s.chunk_offset, s.length));
      out.emplace_back("exp_avg_sq." + name, b.exp_avg_sq.narrow(0, s.chunk_offset, s.length));
    }
  return out;
}

void ZeroOptimizer::load_state(const OptimizerStateSource& source, int64_t steps) {
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    for (const Segment& s : b.owned) {
      const std::string& name = params_[s.param].name;
      b.master.narrow(0, s.chunk_offset, s.length).copy_(source.read("master", name, s.param_offset, s.length));
      b.exp_avg.narrow(0, s.chunk_offset, s.length).copy_(source.read("exp_avg", name, s.param_offset, s.length));
      b.exp_avg_sq.narrow(0, s.chunk_offset, s.length)
          .copy_(source.read("exp_avg_sq", name, s.param_offset, s.length));
    }
    if (!b.master_is_view) own_chunk(b.flat, b.chunk, rank_).copy_(b.master);
  }
  step_ = steps;
  gather_all();
}

ZeroMemory ZeroOptimizer::memory() const {
  ZeroMemory m;
  for (const Bucket& b : buckets_) {
    m.optimizer_bytes += int64_t(b.exp_avg.nbytes() + b.exp_avg_sq.nbytes()) + (b.master_is_view ? 0 : int64_t(b.master.nbytes()));
    m.gradient_bytes += int64_t(b.grad.nbytes());
  }
  m.comm_peak_bytes = comm_peak_;
  return m;
}

}  // namespace fusellm::train
