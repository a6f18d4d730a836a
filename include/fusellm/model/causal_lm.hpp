#pragma once
// The causal-LM interface every model family implements. Models keep their weights as plain tensors
// named exactly as in the HF checkpoint, so loading is a name look-up and saving writes HF layout.
// Model code knows nothing of parallelism or training; it maps token ids to logits. The forward pass is
// functional (no torch::nn modules): training sets requires_grad on parameters() and may wrap each block
// through ForwardArgs::block_runner to recompute activations.
#include <functional>
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
  int64_t head_dim = 0;         // `head_dim` when given, else hidden_size / num_heads
  int64_t max_context = 0;      // max_position_embeddings / max_seq_len (family default when absent)
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;

  JsonView view() const { return JsonView(raw, source); }
};

// Per-layer key/value cache. Tensors are [B, kv_heads, T, head_dim], keys after RoPE (after clip for MPT).
// Decoding appends one position per step; after reserve(n) an append that finds no room allocates room for
// n more positions, so the following ones write in place instead of copying the whole cache (at::cat)
// every step. keys/values are then views into that storage.
struct KVCache {
  std::vector<at::Tensor> keys, values;
  at::Tensor attention_mask;    // [B, T_past] of 1/0 for the cached positions (undefined = all 1)
  std::vector<at::Tensor> key_storage, value_storage;  // [B, kv_heads, capacity, head_dim] behind keys/values
  int64_t reserved = 0;

  KVCache() = default;
  // A copy shares the views but not the storage: it appends into storage of its own, so two branches
  // from one prefix never write the same positions (the original only writes past the copy's length).
  KVCache(const KVCache& other)
      : keys(other.keys), values(other.values), attention_mask(other.attention_mask), reserved(other.reserved) {}
  KVCache& operator=(const KVCache& other) {
    if (this != &other) *this = KVCache(other);
    return *this;
  }
  KVCache(KVCache&&) = default;
  KVCache& operator=(KVCache&&) = default;

  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
  void clear() { *this = KVCache(); }
  void reserve(int64_t positions) { reserved = positions; }
  // Appends [B, kv_heads, T, head_dim] to layer `layer`; returns the layer's keys and values so far.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  // The cache of batch rows `index` (repeats allowed), storage and reservation kept.
  KVCache rows(const at::Tensor& index) const;
};

// Runs one transformer block: block_runner(layer, block, hidden) must return block(hidden). Training uses
// it to recompute a block's activations in backward (activation checkpointing); by default it calls block.
using BlockFn = std::function<at::Tensor(const at::Tensor&)>;
using BlockRunner = std::function<at::Tensor(int64_t layer, const BlockFn& block, const at::Tensor& hidden)>;

struct ForwardArgs {
  at::Tensor input_ids;         // [B, T] int64
  at::Tensor attention_mask;    // [B, T] 1 = real, 0 = padding (right padding); undefined = all real
  at::Tensor position_ids;      // [B, T]; undefined = past_length + 0..T-1
  at::Tensor segment_ids;       // [B, T] int64; when set, a query attends only to keys of its own segment
                                // (packed documents); undefined = one segment. Not with a KV cache.
  KVCache* cache = nullptr;     // when set, attends to and appends to the cache
  int64_t logits_to_keep = 0;   // forward(): 0 = logits at every position, N = only the last N positions
  BlockRunner block_runner;     // optional, see BlockRunner
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  const ModelConfig& config() const { return config_; }

  // Logits [B, T, vocab] (or [B, logits_to_keep, vocab]) in float32, whatever the weight dtype.
  at::Tensor forward(const ForwardArgs& args);
  // The final-normed hidden states [B, T, hidden] in the weights' dtype, before the LM head.
  virtual at::Tensor forward_hidden(const ForwardArgs& args) = 0;
  // LM head on hidden states [..., hidden] → float32 logits [..., vocab] (for chunked losses).
  virtual at::Tensor logits_from_hidden(const at::Tensor& hidden) = 0;

  // Parameters under their HF names (tied weights appear once, under the name the checkpoint uses).
  const io::NamedTensors& parameters() const { return params_; }
  io::NamedTensors& parameters() { return params_; }
  at::Tensor& param(const std::string& name);
  bool has_param(const std::string& name) const { return param_index_.count(name) > 0; }
  int64_t num_parameters() const;

  // Converts every parameter (floating ones to `dtype`, all to `device`); keeps requires_grad.
  void to(std::optional<at::ScalarType> dtype, at::Device device);
  at::Device device() const;
  at::ScalarType dtype() const;  // of the first floating parameter

 protected:
  explicit CausalLM(ModelConfig config) : config_(std::move(config)) {}
  // Declares a parameter with its expected shape (a meta-device placeholder until loading fills it).
  // Returns its index in params_, which stays valid: families read weights through w(index).
  size_t declare(const std::string& name, std::vector<int64_t> shape);
  const at::Tensor& w(size_t index) const { return params_[index].second; }
  // Calls args.block_runner when set, else block(hidden).
  static at::Tensor run_block(const ForwardArgs& args, int64_t layer, const BlockFn& block,
                              const at::Tensor& hidden);

  ModelConfig config_;
  io::NamedTensors params_;
  std::map<std::string, size_t> param_index_;
  friend void load_weights(CausalLM&, const io::CheckpointReader&, const io::LoadOptions&);
};

// Reads config.json from an HF model directory (common keys, per-family aliases and defaults).
// A missing required key is an Error naming config.json and the key.
ModelConfig read_model_config(const fs::path& dir);

// Fills the declared parameters from a checkpoint: missing tensors are an error listing them all,
// unexpected ones are logged (and ignored), shape mismatches name the tensor and both shapes.
void load_weights(CausalLM& model, const io::CheckpointReader& reader, const io::LoadOptions& options);

// config.json → registry → weights. The one entry point the CLI and every stage use.
std::unique_ptr<CausalLM> load_model(const fs::path& dir, const io::LoadOptions& options = {});

}  // namespace fusellm::model
