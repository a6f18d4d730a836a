#pragma once
// A freshly initialized model written as a Hugging Face directory: config.json as given plus
// model.safetensors with the weights HF's _init_weights would draw (linear and embedding weights
// ~ N(0, initializer_range), norm weights 1, biases 0). Used for smoke tests, benchmarks and pipeline
// tests that need a model of a given family, tokenizer or size without downloading one.
#include <cstdint>

#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::model {

// Writes `dir`/config.json (= `config`) and `dir`/model.safetensors (float32) deterministically from
// `seed`. The config is validated by the model's family first (unknown model_type, missing keys → Error).
void write_random_model(const fs::path& dir, const json& config, uint64_t seed);

}  // namespace fusellm::model
