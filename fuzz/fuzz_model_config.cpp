// A model directory's config.json (with, in a bundle, the weights): read_model_config → the family's
// declared parameters → load_model, which checks every size the config claims against the checkpoint.
// Bundle: `#@ config.json`, `#@ model.safetensors`.
#include "fuzz_support.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/model/registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "config.json");
  fuzz::expect_clean_errors("fuzz_model_config", [&] {
    if (fs::exists(dir / "model.safetensors")) {
      auto model = model::load_model(dir);
      (void)model->num_parameters();
    } else {
      const model::ModelConfig config = model::read_model_config(dir);
      (void)model::create_model(config)->num_parameters();
    }
  });
  return 0;
}
