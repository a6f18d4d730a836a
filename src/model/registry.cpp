// model_type → family factory. Built-ins are registered explicitly on first use (see registry.hpp).
#include "fusellm/model/registry.hpp"

#include <map>
#include <mutex>

#include "fusellm/util/error.hpp"

namespace fusellm::model {

namespace {

std::map<std::string, ModelFactory>& factories() {
  static std::map<std::string, ModelFactory> table;
  return table;
}

std::recursive_mutex& registry_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

void ensure_builtins() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_llama_family();
    register_mpt();
    register_gpt_neox();
  });
}

}  // namespace

void register_model(const std::string& model_type, ModelFactory factory) {
  std::lock_guard<std::recursive_mutex> lock(registry_mutex());
  factories()[model_type] = std::move(factory);
}

std::vector<std::string> registered_model_types() {
  ensure_builtins();
  std::lock_guard<std::recursive_mutex> lock(registry_mutex());
  std::vector<std::string> types;
  for (const auto& [type, factory] : factories()) types.push_back(type);
  return types;  // sorted: std::map order
}

std::unique_ptr<CausalLM> create_model(const ModelConfig& config) {
  ensure_builtins();
  ModelFactory factory;
  {
    std::lock_guard<std::recursive_mutex> lock(registry_mutex());
    auto it = factories().find(config.model_type);
    if (it != factories().end()) factory = it->second;
  }
  if (!factory) {
    std::string supported;
    for (const auto& type : registered_model_types()) supported += (supported.empty() ? "" : ", ") + type;
    fail("{}: unknown model_type '{}' (supported: {})", config.source, config.model_type, supported);
  }
  return factory(config);
}

}  // namespace fusellm::model
