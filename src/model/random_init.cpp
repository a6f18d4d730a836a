// Random initialization of any registered family from its declared parameter shapes.
#include "fusellm/model/random_init.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include "fusellm/io/safetensors.hpp"
#include "fusellm/model/registry.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::model {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Norm scales are the only 1-D weights the families declare ("...norm.weight", "ln_f.weight", …); every
// 1-D tensor named *.bias is a bias. 2-D weights are linear layers or embeddings.
at::Tensor initial_value(const std::string& name, at::IntArrayRef shape, double std, at::Generator& gen) {
  if (shape.size() >= 2) return at::normal(0.0, std, shape, gen, at::kFloat);
  if (ends_with(name, ".bias")) return at::zeros(shape, at::kFloat);
  return at::ones(shape, at::kFloat);
}

}  // namespace

void write_random_model(const fs::path& dir, const json& config, uint64_t seed) {
  fs::create_directories(dir);
  const fs::path config_path = dir / "config.json";
  write_file_atomic(config_path, config.dump(2) + "\n");
  const ModelConfig cfg = read_model_config(dir);
  auto model = create_model(cfg);
  const double std = cfg.view().get_or<double>("initializer_range", 0.02);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  io::NamedTensors weights;
  for (const auto& [name, meta] : model->parameters())
    weights.emplace_back(name, initial_value(name, meta.sizes(), std, gen));
  io::save_safetensors(dir / "model.safetensors", weights);
}

}  // namespace fusellm::model
