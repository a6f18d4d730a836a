#pragma once
// Building blocks shared by the model families, as plain functions over tensors. Semantics follow HF's
// eager code: norms computed in float32 (float64 for a float64 model) and cast back, RoPE in the rotate_half convention with float32
// tables, masks that use the compute dtype's lowest finite value (never -inf), softmax in float32.
#include <optional>
#include <utility>
#include <vector>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/torch_pch.hpp"

namespace fusellm::model {

// The dtype norm statistics and logits are computed in: float32 as HF does for fp32/bf16/fp16 models,
// float64 for a float64 model (fp64 training; narrowing there would defeat its purpose).
inline at::ScalarType at_least_float(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }
inline at::Tensor to_logits_dtype(const at::Tensor& logits) { return logits.to(at_least_float(logits.scalar_type())); }

// w · x / sqrt(mean(x²) + eps), no mean subtraction, no bias.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
// LayerNorm over the last dim; `bias` may be undefined (MPT with no_bias).
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);
// GELU by HF hidden_act name: "gelu" = exact erf; "gelu_new", "gelu_fast", "gelu_pytorch_tanh" = tanh.
at::Tensor gelu_by_name(const at::Tensor& x, const std::string& act);

// Rotary position embedding on the first `rotary_dim` dims of each head (pairs (i, i + rotary_dim/2)).
struct RopeSpec {
  int64_t rotary_dim = 0;
  double theta = 10000.0;
  double linear_factor = 1.0;  // rope_scaling {"type"|"rope_type": "linear", "factor": f}: inv_freq / f
};
// Reads rope_scaling from config (null, "default" or "linear"; anything else is an Error naming the file).
RopeSpec read_rope_spec(const JsonView& config, int64_t rotary_dim, double theta);
// inv_freq_i = theta^(-2i/rotary_dim) / factor, float32 [rotary_dim/2].
at::Tensor rope_inv_freq(const RopeSpec& spec);
// cos and sin tables [B, 1, T, rotary_dim] in `dtype` for positions [B, T].
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const RopeSpec& spec, const at::Tensor& positions,
                                               at::ScalarType dtype);
// x [B, H, T, D]: x[..., :rot]·cos + rotate_half(x[..., :rot])·sin; dims rot..D pass through.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// ALiBi slopes (mosaic gen_slopes / BLOOM): n = 2^ceil(log2 H), slope_k = 2^-((k+1)·max/n); when n != H,
// (odd-indexed ++ even-indexed)[:H].
std::vector<double> alibi_slopes(int64_t num_heads, double alibi_bias_max = 8.0);

// The compute dtype's most negative finite value (HF's torch.finfo(dtype).min).
double lowest_value(at::ScalarType dtype);

// Additive attention masks for one forward: key j is visible from query i (absolute index past + t) iff
// j <= i, key j is not padding, (with window W > 0) i - W < j, and (with segment ids) key j lies in query
// i's segment. Visible entries carry the ALiBi bias slope_h · (j - (Tk - 1)) when slopes are given, masked
// ones lowest_value(dtype). Masks are built on first request per window and reused by every layer.
struct ForwardState;

class AttentionMasks {
 public:
  // key_padding: [B, Tk] 1/0 (cached + new keys), undefined = all real. segment_ids: [B, T] int64 of the
  // queries (= the keys: only without a cache, past_len 0), undefined = one segment.
  AttentionMasks(at::Tensor key_padding, int64_t batch, int64_t query_len, int64_t past_len,
                 at::ScalarType dtype, at::Device device, std::vector<double> alibi_slopes = {},
                 at::Tensor segment_ids = {});
  // The masks of one forward pass (its key padding and, when given, its segment ids).
  AttentionMasks(const ForwardState& state, at::ScalarType dtype, at::Device device,
                 std::vector<double> alibi_slopes = {});
  // [B, 1 or H, T, Tk] additive mask in the compute dtype; window 0 = no sliding window.
  const at::Tensor& get(int64_t window = 0);

 private:
  at::Tensor key_padding_;
  at::Tensor segment_ids_;
  int64_t batch_, query_len_, past_len_;
  at::ScalarType dtype_;
  at::Device device_;
  std::vector<double> slopes_;
  std::map<int64_t, at::Tensor> built_;
};

// The per-forward state every family needs: positions, the key padding mask (cached + new) and the
// cache bookkeeping. Construct once per forward, before layer 0 touches the cache.
struct ForwardState {
  int64_t batch = 0, query_len = 0, past_len = 0;
  at::Tensor positions;    // [B, T] int64
  at::Tensor key_padding;  // [B, past + T] or undefined (all real)
  at::Tensor segment_ids;  // [B, T] int64 on the device, or undefined (one segment); never with a cache
  ForwardState(const ForwardArgs& args, at::Device device);
};


// Appends this step's keys/values [B, KV, T, D] to layer `layer` of the cache (when given) and returns
// the keys/values to attend to (cached + new).
std::pair<at::Tensor, at::Tensor> update_kv_cache(KVCache* cache, int64_t layer, const at::Tensor& k,
                                                  const at::Tensor& v);

// softmax(q·kᵀ·scale + mask)·v with GQA (k/v may have fewer heads than q); q [B, H, T, D] → [B, T, H·D].
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                  double scale);

// [B, T, H·D] → [B, H, T, D]
at::Tensor split_heads(const at::Tensor& x, int64_t heads, int64_t head_dim);

}  // namespace fusellm::model
