// MPT (mosaicml/mpt-7b and HF MptForCausalLM): fused Wqkv clipped before the split, ALiBi, LayerNorm
// without bias when no_bias, exact-GELU MLP of expansion_ratio·d_model, head tied to wte.
// h += out_proj(attn(LN1(h))); h += down(gelu(up(LN2(h)))).
#include <cmath>

#include "fusellm/model/layers.hpp"
#include "fusellm/model/registry.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::model {

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

class MptModel : public CausalLM {
 public:
  explicit MptModel(const ModelConfig& cfg) : CausalLM(cfg) {
    const JsonView config = cfg.view();
    const int64_t d = cfg.hidden_size;
    eps_ = config.get_or<double>("layer_norm_epsilon", 1e-5);
    read_attn_config(config);
    read_logit_scale(config);
    const std::string norm_type = config.get_or<std::string>("norm_type", "low_precision_layernorm");
    // low_precision_layernorm only changes the autocast dtype; in fp32/bf16 here it is a plain LayerNorm.
    FUSELLM_CHECK(norm_type == "low_precision_layernorm" || norm_type == "layernorm",
                  "{}: norm_type '{}' is not supported (supported: layernorm, low_precision_layernorm)", cfg.source,
                  norm_type);
    if (config.has("ffn_config")) {
      const std::string ffn_type = config.child("ffn_config").get_or<std::string>("ffn_type", "mptmlp");
      FUSELLM_CHECK(ffn_type == "mptmlp", "{}: ffn_config.ffn_type '{}' is not supported (supported: mptmlp)",
                    cfg.source, ffn_type);
    }
    const int64_t ffn = static_cast<int64_t>(config.get_or<double>("expansion_ratio", 4.0) * static_cast<double>(d));
    const bool bias = !config.get_or<bool>("no_bias", true);

    auto linear_bias = [&](const std::string& name, int64_t rows) { return bias ? declare(name, {rows}) : kNone; };
    wte_ = declare("transformer.wte.weight", {cfg.vocab_size, d});
    for (int64_t i = 0; i < cfg.num_layers; ++i) {
      const std::string p = "transformer.blocks." + std::to_string(i) + ".";
      Block block;
      block.norm1 = declare(p + "norm_1.weight", {d});
      block.norm1_bias = linear_bias(p + "norm_1.bias", d);
      block.wqkv = declare(p + "attn.Wqkv.weight", {3 * d, d});
      block.wqkv_bias = linear_bias(p + "attn.Wqkv.bias", 3 * d);
      block.out = declare(p + "attn.out_proj.weight", {d, d});
      block.out_bias = linear_bias(p + "attn.out_proj.bias", d);
      block.norm2 = declare(p + "norm_2.weight", {d});
      block.norm2_bias = linear_bias(p + "norm_2.bias", d);
      block.up = declare(p + "ffn.up_proj.weight", {ffn, d});
      block.up_bias = linear_bias(p + "ffn.up_proj.bias", ffn);
      block.down = declare(p + "ffn.down_proj.weight", {d, ffn});
      block.down_bias = linear_bias(p + "ffn.down_proj.bias", d);
      blocks_.push_back(block);
    }
    norm_f_ = declare("transformer.norm_f.weight", {d});
    norm_f_bias_ = linear_bias("transformer.norm_f.bias", d);
    head_ = cfg.tie_word_embeddings ? wte_ : declare("lm_head.weight", {cfg.vocab_size, d});
  }

  at::Tensor forward_hidden(const ForwardArgs& args) override {
    const at::Device device = this->device();
    ForwardState state(args, device);
    // ALiBi depends on key distance only; positions (and position_ids) play no part.
    // Closures own what they use: activation checkpointing re-runs them in backward, after this returns.
    auto masks = std::make_shared<AttentionMasks>(state, dtype(), device, alibi_slopes(config_.num_heads, alibi_bias_max_));
    KVCache* cache = args.cache;
    at::Tensor h = at::embedding(w(wte_), args.input_ids.to(device));
    for (int64_t i = 0; i < static_cast<int64_t>(blocks_.size()); ++i)
      h = run_block(args, i, [this, i, cache, masks](const at::Tensor& x) { return block(i, x, cache, *masks); }, h);
    return layer_norm(h, w(norm_f_), optional(norm_f_bias_), eps_);
  }

  at::Tensor logits_from_hidden(const at::Tensor& hidden) override {
    auto logits = to_logits_dtype(at::linear(hidden, w(head_)));
    return logit_scale_ ? logits * *logit_scale_ : logits;
  }

 private:
  struct Block {
    size_t norm1, wqkv, out, norm2, up, down;
    size_t norm1_bias, wqkv_bias, out_bias, norm2_bias, up_bias, down_bias;
  };

  at::Tensor optional(size_t index) const { return index == kNone ? at::Tensor() : w(index); }

  void read_attn_config(const JsonView& config) {
    const ModelConfig& cfg = config_;
    softmax_scale_ = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim));
    if (!config.has("attn_config")) return;
    const JsonView attn = config.child("attn_config");
    // HF's native MptModel always uses ALiBi; mosaic's learned-position variant (alibi: false) is not ported.
    FUSELLM_CHECK(attn.get_or<bool>("alibi", true), "{}: attn_config.alibi false (learned positions) is not supported",
                  cfg.source);
    FUSELLM_CHECK(!attn.get_or<bool>("qk_ln", false), "{}: attn_config.qk_ln is not supported", cfg.source);
    FUSELLM_CHECK(!attn.get_or<bool>("rope", false), "{}: attn_config.rope is not supported", cfg.source);
    FUSELLM_CHECK(!attn.get_or<bool>("prefix_lm", false), "{}: attn_config.prefix_lm is not supported", cfg.source);
    const std::string attn_type = attn.get_or<std::string>("attn_type", "multihead_attention");
    FUSELLM_CHECK(attn_type == "multihead_attention",
                  "{}: attn_config.attn_type '{}' is not supported (supported: multihead_attention)", cfg.source,
                  attn_type);
    alibi_bias_max_ = attn.get_or<double>("alibi_bias_max", 8.0);
    // clip_qkv: null, 0 and false all mean no clipping (mosaic tests truthiness).
    if (attn.has("clip_qkv") && attn.raw()["clip_qkv"].is_number()) {
      const double clip = attn.get<double>("clip_qkv");
      if (clip != 0) clip_qkv_ = clip;
    }
    if (attn.has("softmax_scale")) softmax_scale_ = attn.get<double>("softmax_scale");
  }

  void read_logit_scale(const JsonView& config) {
    if (!config.has("logit_scale")) return;
    const json& value = config.raw()["logit_scale"];
    if (value.is_string()) {
      FUSELLM_CHECK(value == "inv_sqrt_d_model", "{}: logit_scale '{}' is not supported (a number or "
                    "\"inv_sqrt_d_model\")", config.source(), value.get<std::string>());
      logit_scale_ = 1.0 / std::sqrt(static_cast<double>(config_.hidden_size));
    } else {
      logit_scale_ = config.get<double>("logit_scale");
    }
  }

  at::Tensor block(int64_t i, const at::Tensor& x, KVCache* cache, AttentionMasks& masks) const {
    const Block& b = blocks_[i];
    const int64_t d = config_.hidden_size, heads = config_.num_heads, head_dim = config_.head_dim;
    auto normed = layer_norm(x, w(b.norm1), optional(b.norm1_bias), eps_);
    auto qkv = at::linear(normed, w(b.wqkv), optional(b.wqkv_bias));
    if (clip_qkv_) qkv = qkv.clamp(-*clip_qkv_, *clip_qkv_);  // on the fused tensor, before the split
    auto q = split_heads(qkv.narrow(-1, 0, d), heads, head_dim);
    auto k = split_heads(qkv.narrow(-1, d, d), heads, head_dim);
    auto v = split_heads(qkv.narrow(-1, 2 * d, d), heads, head_dim);
    auto [keys, values] = update_kv_cache(cache, i, k, v);
    auto attn = attend(q, keys, values, masks.get(), softmax_scale_);
    auto h = x + at::linear(attn, w(b.out), optional(b.out_bias));
    normed = layer_norm(h, w(b.norm2), optional(b.norm2_bias), eps_);
    auto hidden = at::gelu(at::linear(normed, w(b.up), optional(b.up_bias)));  // exact erf GELU
    return h + at::linear(hidden, w(b.down), optional(b.down_bias));
  }

  double eps_ = 1e-5;
  double alibi_bias_max_ = 8.0;
  double softmax_scale_ = 1.0;
  std::optional<double> clip_qkv_;
  std::optional<double> logit_scale_;
  size_t wte_ = 0, norm_f_ = 0, norm_f_bias_ = kNone, head_ = 0;
  std::vector<Block> blocks_;
};

}  // namespace

void register_mpt() {
  register_model("mpt", [](const ModelConfig& cfg) { return std::make_unique<MptModel>(cfg); });
}

}  // namespace fusellm::model
