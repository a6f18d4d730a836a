// `fusellm version`: versions of fusellm and the LibTorch it was built with, and what it can use.
#include <iostream>

#include "command.hpp"
#include "fusellm/util/torch_compat.hpp"

namespace {
fusellm::cli::Action setup(CLI::App& app) {
  return [] {
    std::cout << "fusellm 0.1.0\nlibtorch " << TORCH_VERSION << "\ncuda "
#ifdef FUSELLM_HAS_CUDA
              << (torch::cuda::is_available() ? "available" : "built, no device")
#else
              << "not built"
#endif
              << "\n";
    return 0;
  };
}
}  // namespace
FUSELLM_COMMAND(version, "Print versions and build features", setup);
