// GPT-NeoX (Pythia): fused query_key_value interleaved per head, partial rotary (rotary_pct), biases on
// every linear, parallel residual h + attn(LN1(h)) + mlp(LN2(h)) (or sequential when
// use_parallel_residual is false), untied embed_out.
#include <cmath>

#include "fusellm/model/layers.hpp"
#include "fusellm/model/registry.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::model {

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

class GptNeoXModel : public CausalLM {
 public:
  explicit GptNeoXModel(const ModelConfig& cfg) : CausalLM(cfg) {
    const JsonView config = cfg.view();
    const int64_t d = cfg.hidden_size;
    FUSELLM_CHECK(cfg.num_kv_heads == cfg.num_heads, "{}: gpt_neox has no grouped-query attention", cfg.source);
    eps_ = config.get_or<double>("layer_norm_eps", 1e-5);
    parallel_residual_ = config.get_or<bool>("use_parallel_residual", true);
    act_ = config.get_or<std::string>("hidden_act", "gelu");
    FUSELLM_CHECK(act_ == "gelu" || act_ == "gelu_new" || act_ == "gelu_fast" || act_ == "gelu_pytorch_tanh",
                  "{}: hidden_act '{}' is not supported for gpt_neox (supported: gelu, gelu_new, gelu_fast, "
                  "gelu_pytorch_tanh)", cfg.source, act_);
    // Python's int(head_dim * rotary_pct); the inv_freq exponent uses this rotary dimension.
    const double rotary_pct = config.get_or<double>("rotary_pct", 0.25);
    const auto rotary_dim = static_cast<int64_t>(static_cast<double>(cfg.head_dim) * rotary_pct);
    const double theta = config.has("rope_theta") ? config.get<double>("rope_theta")
                                                  : config.get_or<double>("rotary_emb_base", 10000.0);
    rope_ = read_rope_spec(config, rotary_dim, theta);
    const int64_t intermediate = config.get_or<int64_t>("intermediate_size", 4 * d);
    const bool attention_bias = config.get_or<bool>("attention_bias", true);

    embed_ = declare("gpt_neox.embed_in.weight", {cfg.vocab_size, d});
    for (int64_t i = 0; i < cfg.num_layers; ++i) {
      const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
      Layer layer;
      layer.ln1 = declare(p + "input_layernorm.weight", {d});
      layer.ln1_bias = declare(p + "input_layernorm.bias", {d});
      layer.ln2 = declare(p + "post_attention_layernorm.weight", {d});
      layer.ln2_bias = declare(p + "post_attention_layernorm.bias", {d});
      layer.qkv = declare(p + "attention.query_key_value.weight", {3 * d, d});
      layer.qkv_bias = attention_bias ? declare(p + "attention.query_key_value.bias", {3 * d}) : kNone;
      layer.dense = declare(p + "attention.dense.weight", {d, d});
      layer.dense_bias = attention_bias ? declare(p + "attention.dense.bias", {d}) : kNone;
      layer.up = declare(p + "mlp.dense_h_to_4h.weight", {intermediate, d});
      layer.up_bias = declare(p + "mlp.dense_h_to_4h.bias", {intermediate});
      layer.down = declare(p + "mlp.dense_4h_to_h.weight", {d, intermediate});
      layer.down_bias = declare(p + "mlp.dense_4h_to_h.bias", {d});
      layers_.push_back(layer);
    }
    final_norm_ = declare("gpt_neox.final_layer_norm.weight", {d});
    final_norm_bias_ = declare("gpt_neox.final_layer_norm.bias", {d});
    head_ = cfg.tie_word_embeddings ? embed_ : declare("embed_out.weight", {cfg.vocab_size, d});
  }

  at::Tensor forward_hidden(const ForwardArgs& args) override {
    const at::Device device = this->device();
    const at::ScalarType dtype = this->dtype();
    ForwardState state(args, device);
    // Closures own what they use: activation checkpointing re-runs them in backward, after this returns.
    auto masks = std::make_shared<AttentionMasks>(state, dtype, device);
    const auto rope_tables = rope_cos_sin(rope_, state.positions, dtype);
    KVCache* cache = args.cache;
    at::Tensor h = at::embedding(w(embed_), args.input_ids.to(device));
    for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i)
      h = run_block(args, i, [this, i, cache, masks, rope_tables](const at::Tensor& x) {
        return block(i, x, cache, *masks, rope_tables);
      }, h);
    return layer_norm(h, w(final_norm_), w(final_norm_bias_), eps_);
  }

  at::Tensor logits_from_hidden(const at::Tensor& hidden) override {
    return to_logits_dtype(at::linear(hidden, w(head_)));
  }

 private:
  struct Layer {
    size_t ln1, ln1_bias, ln2, ln2_bias, qkv, qkv_bias, dense, dense_bias, up, up_bias, down, down_bias;
  };

  at::Tensor optional(size_t index) const { return index == kNone ? at::Tensor() : w(index); }

  at::Tensor attention(int64_t i, const at::Tensor& normed, KVCache* cache, AttentionMasks& masks,
                       const std::pair<at::Tensor, at::Tensor>& rope_tables) const {
    const Layer& layer = layers_[i];
    const int64_t heads = config_.num_heads, head_dim = config_.head_dim;
    // [B, T, 3d] viewed as [B, T, H, 3·D]: per head, q then k then v.
    auto qkv = at::linear(normed, w(layer.qkv), optional(layer.qkv_bias))
                   .view({normed.size(0), normed.size(1), heads, 3 * head_dim})
                   .transpose(1, 2);
    auto q = apply_rope(qkv.narrow(-1, 0, head_dim), rope_tables.first, rope_tables.second);
    auto k = apply_rope(qkv.narrow(-1, head_dim, head_dim), rope_tables.first, rope_tables.second);
    auto v = qkv.narrow(-1, 2 * head_dim, head_dim);
    auto [keys, values] = update_kv_cache(cache, i, k, v);
    auto attn = attend(q, keys, values, masks.get(), 1.0 / std::sqrt(static_cast<double>(head_dim)));
    return at::linear(attn, w(layer.dense), optional(layer.dense_bias));
  }

  at::Tensor mlp(int64_t i, const at::Tensor& normed) const {
    const Layer& layer = layers_[i];
    return at::linear(gelu_by_name(at::linear(normed, w(layer.up), w(layer.up_bias)), act_), w(layer.down),
                      w(layer.down_bias));
  }

  at::Tensor block(int64_t i, const at::Tensor& x, KVCache* cache, AttentionMasks& masks,
                   const std::pair<at::Tensor, at::Tensor>& rope_tables) const {
    const Layer& layer = layers_[i];
    auto attn = attention(i, layer_norm(x, w(layer.ln1), w(layer.ln1_bias), eps_), cache, masks, rope_tables);
    if (parallel_residual_) {
      // Both norms read the block input.
      return x + attn + mlp(i, layer_norm(x, w(layer.ln2), w(layer.ln2_bias), eps_));
    }
    auto h = x + attn;
    return h + mlp(i, layer_norm(h, w(layer.ln2), w(layer.ln2_bias), eps_));
  }

  double eps_ = 1e-5;
  bool parallel_residual_ = true;
  std::string act_;
  RopeSpec rope_;
  size_t embed_ = 0, final_norm_ = 0, final_norm_bias_ = 0, head_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace

void register_gpt_neox() {
  register_model("gpt_neox", [](const ModelConfig& cfg) { return std::make_unique<GptNeoXModel>(cfg); });
}

}  // namespace fusellm::model
