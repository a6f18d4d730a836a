// FLOP counts for MFU.
#include "fusellm/train/flops.hpp"

#include <string>

#ifdef FUSELLM_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace fusellm::train {

int64_t matmul_parameters(const model::CausalLM& model) {
  const model::ModelConfig& c = model.config();
  const int64_t embedding = c.vocab_size * c.hidden_size;
  // A tied table is one tensor used twice: once as a lookup (free), once as the LM head (counted).
  return model.num_parameters() - (c.tie_word_embeddings ? 0 : embedding);
}

double training_flops_per_token(int64_t matmul_params, const model::ModelConfig& config, int64_t seq_len) {
  return 6.0 * static_cast<double>(matmul_params) +
         12.0 * static_cast<double>(config.num_layers) * static_cast<double>(config.num_heads * config.head_dim) *
             static_cast<double>(seq_len);
}

std::optional<double> peak_flops(const at::Device& device, double configured_tflops) {
  if (configured_tflops > 0) return configured_tflops * 1e12;
#ifdef FUSELLM_HAS_CUDA
  if (device.is_cuda()) {
    const std::string name = at::cuda::getDeviceProperties(device.index())->name;
    if (name.find("A100") != std::string::npos) return 312e12;
    if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return 989e12;
  }
#else
  (void)device;
#endif
  return std::nullopt;
}

}  // namespace fusellm::train
