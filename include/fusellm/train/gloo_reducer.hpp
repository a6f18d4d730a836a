#pragma once
// Data-parallel gradient averaging over a c10d process group built from the launcher's environment:
// TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it), then Gloo for gradients on the CPU, or NCCL for
// gradients on a GPU when LibTorch has it (FUSELLM_HAS_NCCL). Gradients are flattened into buckets of
// about bucket_bytes, all-reduced and divided by the world size; with overlap, the buckets' all-reduces
// run during the backward of a step's last micro-batch (see grad_buckets.hpp). Every collective has a
// timeout, so a dead rank makes the others fail with an Error naming the operation instead of hanging.
#include <chrono>
#include <memory>

#include "fusellm/train/collectives.hpp"
#include "fusellm/train/grad_buckets.hpp"
#include "fusellm/train/trainer.hpp"
#include "fusellm/util/dist_env.hpp"

namespace fusellm::train {

struct ReducerOptions {
  std::chrono::seconds timeout{300};
  size_t bucket_bytes = 25u << 20;
  bool overlap = true;           // all-reduce buckets while backward still runs
  at::Device device = at::kCPU;  // where the gradients live: a CUDA device selects NCCL (when built with it)
  ReduceScatterEmulation reduce_scatter = ReduceScatterEmulation::ReducePerOwner;  // Gloo only (ZeRO)
};

class ProcessGroupReducer : public GradientReducer {
 public:
  // The backend in use: "gloo" or "nccl".
  virtual const char* backend() const = 0;
  // Buckets of the latest step and how many of them backward started (0 without overlap).
  virtual OverlapStats overlap_stats() const = 0;
};

// Joins the process group (throws Error naming the rank and address when it cannot within the timeout).
std::shared_ptr<ProcessGroupReducer> make_process_group_reducer(const RankInfo& rank, const ReducerOptions& options);

}  // namespace fusellm::train
