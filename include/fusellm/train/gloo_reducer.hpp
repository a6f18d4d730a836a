#pragma once
// Data-parallel gradient averaging over a c10d process group built from the launcher's environment:
// TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it), Gloo on CPU. Gradients are flattened into
// buckets of about 25 MB, all-reduced and divided by the world size. Every collective has a timeout, so
// a dead rank makes the others fail with an Error naming the operation instead of hanging.
#include <chrono>
#include <memory>

#include "fusellm/train/trainer.hpp"
#include "fusellm/util/dist_env.hpp"

namespace fusellm::train {

std::shared_ptr<GradientReducer> make_gloo_reducer(const RankInfo& rank, std::chrono::seconds timeout,
                                                   size_t bucket_bytes = 25u << 20);

}  // namespace fusellm::train
