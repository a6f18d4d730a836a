// The Llama family: llama, mistral (sliding window) and qwen2 (q/k/v biases, gated sliding window).
// Pre-norm blocks: h += o_proj(attn(RMSNorm(h))); h += down(silu(gate(x)) · up(x)) with x = RMSNorm(h).
// RoPE in the rotate_half convention; GQA with query head h reading kv head h / (H / KV).
#include <cmath>

#include "fusellm/model/layers.hpp"
#include "fusellm/model/registry.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::model {

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

class LlamaFamilyModel : public CausalLM {
 public:
  explicit LlamaFamilyModel(const ModelConfig& cfg) : CausalLM(cfg) {
    const JsonView config = cfg.view();
    const std::string& type = cfg.model_type;
    eps_ = config.get_or<double>("rms_norm_eps", 1e-6);
    const std::string act = config.get_or<std::string>("hidden_act", "silu");
    FUSELLM_CHECK(act == "silu" || act == "swish", "{}: hidden_act '{}' is not supported for {} (supported: silu)",
                  cfg.source, act, type);
    rope_ = read_rope_spec(config, cfg.head_dim, config.get_or<double>("rope_theta", 10000.0));
    const int64_t intermediate = config.get<int64_t>("intermediate_size");

    // Biases: llama's attention_bias covers q/k/v/o, mlp_bias the MLP; qwen2 always has q/k/v biases
    // (fixed in its code, not in the config) and none elsewhere; mistral has none.
    const bool qkv_bias = type == "qwen2" || (type == "llama" && config.get_or<bool>("attention_bias", false));
    const bool o_bias = type == "llama" && config.get_or<bool>("attention_bias", false);
    const bool mlp_bias = type == "llama" && config.get_or<bool>("mlp_bias", false);

    const int64_t d = cfg.hidden_size, q_dim = cfg.num_heads * cfg.head_dim, kv_dim = cfg.num_kv_heads * cfg.head_dim;
    embed_ = declare("model.embed_tokens.weight", {cfg.vocab_size, d});
    for (int64_t i = 0; i < cfg.num_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      Layer layer;
      layer.input_norm = declare(p + "input_layernorm.weight", {d});
      layer.q = declare(p + "self_attn.q_proj.weight", {q_dim, d});
      layer.k = declare(p + "self_attn.k_proj.weight", {kv_dim, d});
      layer.v = declare(p + "self_attn.v_proj.weight", {kv_dim, d});
      if (qkv_bias) {
        layer.q_bias = declare(p + "self_attn.q_proj.bias", {q_dim});
        layer.k_bias = declare(p + "self_attn.k_proj.bias", {kv_dim});
        layer.v_bias = declare(p + "self_attn.v_proj.bias", {kv_dim});
      }
      layer.o = declare(p + "self_attn.o_proj.weight", {d, q_dim});
      if (o_bias) layer.o_bias = declare(p + "self_attn.o_proj.bias", {d});
      layer.post_norm = declare(p + "post_attention_layernorm.weight", {d});
      layer.gate = declare(p + "mlp.gate_proj.weight", {intermediate, d});
      layer.up = declare(p + "mlp.up_proj.weight", {intermediate, d});
      layer.down = declare(p + "mlp.down_proj.weight", {d, intermediate});
      if (mlp_bias) {
        layer.gate_bias = declare(p + "mlp.gate_proj.bias", {intermediate});
        layer.up_bias = declare(p + "mlp.up_proj.bias", {intermediate});
        layer.down_bias = declare(p + "mlp.down_proj.bias", {d});
      }
      layer.window = sliding_window_for_layer(config, type, i);
      layers_.push_back(layer);
    }
    norm_ = declare("model.norm.weight", {d});
    head_ = cfg.tie_word_embeddings ? embed_ : declare("lm_head.weight", {cfg.vocab_size, d});
  }

  at::Tensor forward_hidden(const ForwardArgs& args) override {
    const at::Device device = this->device();
    const at::ScalarType dtype = this->dtype();
    ForwardState state(args, device);
    // Block closures own what they use (captured by value): activation checkpointing calls them again
    // during backward, after this function has returned.
    auto masks = std::make_shared<AttentionMasks>(state, dtype, device);
    const auto rope_tables = rope_cos_sin(rope_, state.positions, dtype);
    const at::Tensor cos = rope_tables.first, sin = rope_tables.second;
    KVCache* cache = args.cache;
    at::Tensor h = at::embedding(w(embed_), args.input_ids.to(device));
    for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
      h = run_block(args, i, [this, i, cache, masks, cos, sin](const at::Tensor& x) {
        return block(i, x, cache, *masks, cos, sin);
      }, h);
    }
    return rms_norm(h, w(norm_), eps_);
  }

  at::Tensor logits_from_hidden(const at::Tensor& hidden) override {
    return to_logits_dtype(at::linear(hidden, w(head_)));
  }

 private:
  struct Layer {
    size_t input_norm, q, k, v, o, post_norm, gate, up, down;
    size_t q_bias = kNone, k_bias = kNone, v_bias = kNone, o_bias = kNone;
    size_t gate_bias = kNone, up_bias = kNone, down_bias = kNone;
    int64_t window = 0;  // 0 = full causal attention
  };

  at::Tensor optional(size_t index) const { return index == kNone ? at::Tensor() : w(index); }

  // mistral: sliding_window (null = none) on every layer. qwen2: only when use_sliding_window, and then
  // on layers >= max_window_layers (or where layer_types says "sliding_attention").
  static int64_t sliding_window_for_layer(const JsonView& config, const std::string& type, int64_t layer) {
    if (type == "mistral") return config.get_or<int64_t>("sliding_window", 0);
    if (type != "qwen2" || !config.get_or<bool>("use_sliding_window", false)) return 0;
    const int64_t window = config.get_or<int64_t>("sliding_window", 0);
    if (config.has("layer_types")) {
      const json& types = config.raw()["layer_types"];
      FUSELLM_CHECK(types.is_array() && layer < static_cast<int64_t>(types.size()),
                    "{}: key 'layer_types' must list every layer", config.source());
      return types[layer] == "sliding_attention" ? window : 0;
    }
    return layer >= config.get_or<int64_t>("max_window_layers", 28) ? window : 0;
  }

  at::Tensor block(int64_t i, const at::Tensor& x, KVCache* cache, AttentionMasks& masks, const at::Tensor& cos,
                   const at::Tensor& sin) const {
    const Layer& layer = layers_[i];
    const int64_t head_dim = config_.head_dim;
    auto normed = rms_norm(x, w(layer.input_norm), eps_);
    auto q = split_heads(at::linear(normed, w(layer.q), optional(layer.q_bias)), config_.num_heads, head_dim);
    auto k = split_heads(at::linear(normed, w(layer.k), optional(layer.k_bias)), config_.num_kv_heads, head_dim);
    auto v = split_heads(at::linear(normed, w(layer.v), optional(layer.v_bias)), config_.num_kv_heads, head_dim);
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
    auto [keys, values] = update_kv_cache(cache, i, k, v);
    auto attn = attend(q, keys, values, masks.get(layer.window), 1.0 / std::sqrt(static_cast<double>(head_dim)));
    auto h = x + at::linear(attn, w(layer.o), optional(layer.o_bias));
    normed = rms_norm(h, w(layer.post_norm), eps_);
    auto gated = at::silu(at::linear(normed, w(layer.gate), optional(layer.gate_bias))) *
                 at::linear(normed, w(layer.up), optional(layer.up_bias));
    return h + at::linear(gated, w(layer.down), optional(layer.down_bias));
  }

  double eps_ = 1e-6;
  RopeSpec rope_;
  size_t embed_ = 0, norm_ = 0, head_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace

void register_llama_family() {
  for (const char* type : {"llama", "mistral", "qwen2"})
    register_model(type, [](const ModelConfig& cfg) { return std::make_unique<LlamaFamilyModel>(cfg); });
}

}  // namespace fusellm::model
