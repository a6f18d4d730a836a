// Reduce-scatter, all-gather and all-reduce over c10d process groups; Gloo's missing ones emulated.
#include "fusellm/train/collectives.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "fusellm/train/nccl_group.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::train {

PendingCollective::PendingCollective(std::vector<c10::intrusive_ptr<c10d::Work>> works, std::function<void()> then,
                                     std::vector<at::Tensor> keep_alive)
    : works_(std::move(works)), then_(std::move(then)), keep_alive_(std::move(keep_alive)) {}

void PendingCollective::wait() {
  // Every work is waited for even after one failed, so none is left writing into freed memory.
  std::exception_ptr error;
  for (auto& work : works_) {
    try {
      work->wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  works_.clear();
  keep_alive_.clear();
  if (error) {
    then_ = nullptr;
    if (explain_) {
      try {
        std::rethrow_exception(error);
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        explain_(e);
      }
    }
    std::rethrow_exception(error);
  }
  if (then_) {
    auto then = std::move(then_);
    then_ = nullptr;
    then();
  }
}

ReduceScatterEmulation parse_reduce_scatter_emulation(const std::string& name, const std::string& key) {
  if (name == "reduce") return ReduceScatterEmulation::ReducePerOwner;
  if (name == "allreduce") return ReduceScatterEmulation::AllReduceSlice;
  fail("{}: '{}' is not a reduce-scatter emulation: use \"reduce\" or \"allreduce\"", key, name);
}

namespace {

void check_layout(const at::Tensor& flat, const at::Tensor& chunk, int world, const char* what) {
  FUSELLM_CHECK(flat.dim() == 1 && chunk.dim() == 1 && flat.is_contiguous() && chunk.is_contiguous() &&
                    flat.numel() == chunk.numel() * world,
                "{}: needs contiguous 1-D tensors of world × chunk and chunk elements, got {} and {}", what,
                flat.numel(), chunk.numel());
}

class SingleProcess : public Collectives {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string describe() const override { return "one process"; }
  PendingCollective all_reduce_sum(at::Tensor) override { return {}; }
  PendingCollective reduce_scatter_sum(at::Tensor input, at::Tensor output) override {
    check_layout(input, output, 1, "reduce-scatter");
    if (!output.is_same(input)) output.copy_(input);
    return {};
  }
  PendingCollective all_gather(at::Tensor chunk, at::Tensor output) override {
    check_layout(output, chunk, 1, "all-gather");
    if (!output.is_same(chunk)) output.copy_(chunk);
    return {};
  }
};

// Gloo moves bfloat16 only as raw 16-bit words: LibTorch 1.13's Gloo has no bfloat16 kernels at all.
at::Tensor as_gloo_bits(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16 ? t.view(at::kHalf) : t; }

class GlooCollectives : public Collectives {
 public:
  GlooCollectives(c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank, int world,
                  ReduceScatterEmulation emulation)
      : group_(std::move(group)), rank_(rank), world_(world), emulation_(emulation) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string describe() const override {
    return emulation_ == ReduceScatterEmulation::ReducePerOwner ? "gloo (reduce-scatter as a reduce per owner)"
                                                                : "gloo (reduce-scatter as all-reduce + slice)";
  }

  PendingCollective all_reduce_sum(at::Tensor tensor) override {
    std::vector<at::Tensor> t{tensor};
    return PendingCollective({group_->allreduce(t)}, nullptr, {tensor});
  }

  PendingCollective reduce_scatter_sum(at::Tensor input, at::Tensor output) override {
    check_layout(input, output, world_, "reduce-scatter");
    const int64_t chunk = output.numel();
    auto keep = [input, output, chunk, rank = rank_] { output.copy_(input.narrow(0, rank * chunk, chunk)); };
    if (emulation_ == ReduceScatterEmulation::AllReduceSlice) {
      std::vector<at::Tensor> t{input};
      return PendingCollective({group_->allreduce(t)}, keep, {input});
    }
    // Every rank issues the same reduces in the same order; chunk r ends up summed on rank r only.
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (int r = 0; r < world_; ++r) {
      std::vector<at::Tensor> t{input.narrow(0, r * chunk, chunk)};
      c10d::ReduceOptions options;
      options.rootRank = r;
      works.push_back(group_->reduce(t, options));
    }
    return PendingCollective(std::move(works), keep, {input});
  }

  PendingCollective all_gather(at::Tensor chunk, at::Tensor output) override {
    check_layout(output, chunk, world_, "all-gather");
    const int64_t n = chunk.numel();
    // The input is copied: it may be this rank's own view of `output`.
    std::vector<at::Tensor> input{as_gloo_bits(chunk).clone()};
    std::vector<std::vector<at::Tensor>> outputs(1);
    const at::Tensor bits = as_gloo_bits(output);
    for (int r = 0; r < world_; ++r) outputs[0].push_back(bits.narrow(0, r * n, n));
    return PendingCollective({group_->allgather(outputs, input)}, nullptr, {input[0], output});
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  int rank_, world_;
  ReduceScatterEmulation emulation_;
};

#ifdef FUSELLM_NCCL_GROUP
class NcclCollectives : public Collectives {
 public:
  NcclCollectives(c10::intrusive_ptr<c10d::ProcessGroupNCCL> group, int rank, int world)
      : group_(std::move(group)), rank_(rank), world_(world) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string describe() const override { return "nccl"; }
  PendingCollective all_reduce_sum(at::Tensor tensor) override {
    std::vector<at::Tensor> t{tensor};
    return PendingCollective({group_->allreduce(t)}, nullptr, {tensor});
  }
  PendingCollective reduce_scatter_sum(at::Tensor input, at::Tensor output) override {
    check_layout(input, output, world_, "reduce-scatter");
    return PendingCollective({group_->_reduce_scatter_base(output, input)}, nullptr, {input, output});
  }
  PendingCollective all_gather(at::Tensor chunk, at::Tensor output) override {
    check_layout(output, chunk, world_, "all-gather");
    at::Tensor input = chunk.clone();  // NCCL allows in place only at exactly this rank's offset
    return PendingCollective({group_->_allgather_base(output, input)}, nullptr, {input, output});
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> group_;
  int rank_, world_;
};
#endif

}  // namespace

std::shared_ptr<Collectives> make_single_process_collectives() { return std::make_shared<SingleProcess>(); }

std::shared_ptr<Collectives> make_gloo_collectives(c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank,
                                                   int world_size, ReduceScatterEmulation emulation) {
  return std::make_shared<GlooCollectives>(std::move(group), rank, world_size, emulation);
}

#ifdef FUSELLM_NCCL_GROUP
std::shared_ptr<Collectives> make_nccl_collectives(c10::intrusive_ptr<c10d::ProcessGroupNCCL> group, int rank,
                                                   int world_size) {
  return std::make_shared<NcclCollectives>(std::move(group), rank, world_size);
}
#endif

}  // namespace fusellm::train
