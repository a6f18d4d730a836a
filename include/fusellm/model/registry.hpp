#pragma once
// One registry maps config.json's `model_type` to the family that implements it.
// Built-in families are registered explicitly (register_builtin_models, called on first use): a static
// initializer in a static library would be dropped by the linker when nothing else references its file.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/model/causal_lm.hpp"

namespace fusellm::model {

using ModelFactory = std::function<std::unique_ptr<CausalLM>(const ModelConfig&)>;

struct ModelFamily {
  std::string model_type;
  ModelFactory create;
};

void register_model(const std::string& model_type, ModelFactory factory);
// Throws Error "<config>: unknown model_type 'x' (supported: …)" for an unregistered type.
std::unique_ptr<CausalLM> create_model(const ModelConfig& config);
std::vector<std::string> registered_model_types();

// Each family's .cpp defines one of these; registry.cpp calls them all once.
void register_llama_family();  // llama, mistral, qwen2
void register_mpt();
void register_gpt_neox();

}  // namespace fusellm::model

