#pragma once
// The compute device of a process, chosen the same way by every stage: an explicit --device, or one GPU
// per process of a data-parallel job (cuda:LOCAL_RANK), or the CPU. Header-only: util itself is torch-free,
// and only the LibTorch stages include this.
#include <string>

#include "fusellm/util/error.hpp"
#include "fusellm/util/torch_pch.hpp"

namespace fusellm {

// "cpu", "cuda" or "cuda:N"; an unknown name, or CUDA where there is none, is an Error naming the flag.
inline at::Device parse_device(const std::string& name) {
  at::Device device(at::kCPU);
  try {
    device = at::Device(name);
  } catch (const c10::Error&) {
    fail("--device: unknown device '{}' (cpu, cuda, cuda:N)", name);
  }
  FUSELLM_CHECK(!device.is_cuda() || torch::cuda::is_available(),
                "--device {}: CUDA is not available in this build or on this machine", name);
  return device;
}

// `requested` when given ("cuda" without an index = cuda:LOCAL_RANK); else cuda:LOCAL_RANK when LibTorch
// sees a GPU (an Error when LOCAL_RANK has none: one process per GPU), else the CPU.
inline at::Device device_for_rank(const std::string& requested, int local_rank) {
  if (!requested.empty()) {
    const at::Device device = parse_device(requested);
    return device.is_cuda() && !device.has_index() ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank))
                                                   : device;
  }
  if (!torch::cuda::is_available()) return at::kCPU;
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  FUSELLM_CHECK(local_rank >= 0 && local_rank < gpus,
                "device: LOCAL_RANK={} but this machine has {} CUDA device(s); start at most one process per GPU",
                local_rank, gpus);
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

}  // namespace fusellm
