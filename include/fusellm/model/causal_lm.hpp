#pragma once
// The causal-LM interface every model family implements. Models keep their weights as plain tensors
// named exactly as in the HF checkpoint, so loading is a name look-up and saving writes HF layout.
// Model code knows nothing of parallelism or training; it maps token ids to logits.
#include <memory>
#include <string>
#include <vector>

#include "fusellm/io/checkpoint.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/torch_pch.hpp"

namespace fusellm::model {

// What every family shares, read from config.json; the family keeps the full JSON for its own keys.
struct ModelConfig {
  json raw;                     // config.json as read
  std::string source;           // path of config.json, for error messages
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t max_context = 0;      // max_position_embeddings / max_seq_len
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;
};

// Per-layer key/value cache. Tensors are [B, kv_heads, T, head_dim], keys after RoPE (after clip for MPT).
struct KVCache {
  std::vector<at::Tensor> keys, values;
  at::Tensor attention_mask;    // [B, T_past] of 1/0 for the cached positions (undefined = all 1)
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
  void clear() { keys.clear(); values.clear(); attention_mask = at::Tensor(); }
};

struct ForwardArgs {
  at::Tensor input_ids;         // [B, T] int64
  at::Tensor attention_mask;    // [B, T] 1 = real, 0 = padding (right padding); undefined = all real
  at::Tensor position_ids;      // [B, T]; undefined = past_length + 0..T-1
  KVCache* cache = nullptr;     // when set, attends to and appends to the cache
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  const ModelConfig& config() const { return config_; }

  // Logits [B, T, vocab] in float32 (whatever the weight dtype).
  virtual at::Tensor forward(const ForwardArgs& args) = 0;

  // Parameters under their HF names (tied weights appear once, under the name the checkpoint uses).
  const io::NamedTensors& parameters() const { return params_; }
  io::NamedTensors& parameters() { return params_; }
  at::Tensor& param(const std::string& name);
  int64_t num_parameters() const;

  // Converts every parameter (floating ones to `dtype`, all to `device`).
  void to(std::optional<at::ScalarType> dtype, at::Device device);
  at::Device device() const;
  at::ScalarType dtype() const;

 protected:
  explicit CausalLM(ModelConfig config) : config_(std::move(config)) {}
  // Declares a parameter with its expected shape; loading fills it and checks the shape.
  void declare(const std::string& name, std::vector<int64_t> shape);

  ModelConfig config_;
  io::NamedTensors params_;
  std::map<std::string, size_t> param_index_;
  friend void load_weights(CausalLM&, const io::CheckpointReader&, const io::LoadOptions&);
};

// Reads config.json from an HF model directory (common keys, per-family aliases).
ModelConfig read_model_config(const fs::path& dir);

// Fills the declared parameters from a checkpoint: missing tensors are an error listing them all,
// unexpected ones are logged (and ignored), shape mismatches name the tensor and both shapes.
void load_weights(CausalLM& model, const io::CheckpointReader& reader, const io::LoadOptions& options);

// config.json → registry → weights. The one entry point the CLI and every stage use.
std::unique_ptr<CausalLM> load_model(const fs::path& dir, const io::LoadOptions& options = {});

}  // namespace fusellm::model
