#pragma once
// Whether this build can create an NCCL process group: CMake saw ProcessGroupNCCL.hpp (FUSELLM_HAS_NCCL);
// the header is empty unless LibTorch's torch_cuda target exported USE_C10D_NCCL, and it includes <nccl.h>.
#if defined(FUSELLM_HAS_NCCL) && defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#define FUSELLM_NCCL_GROUP 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
