// Shared layers: norms, RoPE, ALiBi, masks, KV cache and attention (see layers.hpp for the semantics).
#include "fusellm/model/layers.hpp"

#include <cmath>
#include <limits>

#include "fusellm/util/error.hpp"
#include "fusellm/util/torch_compat.hpp"

namespace fusellm::model {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // HF LlamaRMSNorm: statistics in float32, the normalised value cast back before the weight multiply.
  const auto dtype = x.scalar_type();
  auto xf = x.to(at_least_float(dtype));
  auto normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(dtype);
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  const auto dtype = x.scalar_type();
  const at::ScalarType wide = at_least_float(dtype);
  const at::Tensor b = bias.defined() ? bias.to(wide) : at::Tensor();
  return at::layer_norm(x.to(wide), {x.size(-1)}, weight.to(wide), b, eps).to(dtype);
}

at::Tensor gelu_by_name(const at::Tensor& x, const std::string& act) {
  if (act == "gelu") return at::gelu(x);
  return at::gelu(x, "tanh");  // callers validate the name
}

RopeSpec read_rope_spec(const JsonView& config, int64_t rotary_dim, double theta) {
  RopeSpec spec;
  spec.rotary_dim = rotary_dim;
  spec.theta = theta;
  FUSELLM_CHECK(rotary_dim > 0 && rotary_dim % 2 == 0, "{}: rotary dimension {} must be positive and even",
                config.source(), rotary_dim);
  if (!config.has("rope_scaling")) return spec;
  JsonView scaling = config.child("rope_scaling");
  // Recent HF configs write both keys; older files have only "type".
  std::string type = scaling.has("rope_type") ? scaling.get<std::string>("rope_type")
                                              : scaling.get_or<std::string>("type", "default");
  if (type == "default") return spec;
  if (type != "linear")
    fail("{}: rope_scaling type '{}' is not supported (supported: linear)", config.source(), type);
  spec.linear_factor = scaling.get<double>("factor");
  FUSELLM_CHECK(spec.linear_factor > 0, "{}: key 'rope_scaling.factor' must be positive", config.source());
  return spec;
}

at::Tensor rope_inv_freq(const RopeSpec& spec) {
  // float32 like HF: 1 / theta^(arange(0, dim, 2) / dim), then divided by the linear factor.
  auto exponent = at::arange(0, spec.rotary_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(spec.rotary_dim);
  auto inv_freq = 1.0 / at::pow(spec.theta, exponent);
  if (spec.linear_factor != 1.0) inv_freq = inv_freq / spec.linear_factor;
  return inv_freq;
}

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const RopeSpec& spec, const at::Tensor& positions,
                                               at::ScalarType dtype) {
  auto inv_freq = rope_inv_freq(spec).to(positions.device());
  auto freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [B, T, rot/2]
  auto emb = at::cat({freqs, freqs}, -1).unsqueeze(1);              // [B, 1, T, rot]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t rot = cos.size(-1);
  const int64_t dim = x.size(-1);
  auto rotated = rot == dim ? x : x.narrow(-1, 0, rot);
  auto first = rotated.narrow(-1, 0, rot / 2);
  auto second = rotated.narrow(-1, rot / 2, rot / 2);
  auto out = rotated * cos + at::cat({-second, first}, -1) * sin;
  return rot == dim ? out : at::cat({out, x.narrow(-1, rot, dim - rot)}, -1);
}

std::vector<double> alibi_slopes(int64_t num_heads, double alibi_bias_max) {
  int64_t n = 1;
  while (n < num_heads) n *= 2;
  std::vector<double> slopes(n);
  for (int64_t k = 0; k < n; ++k) slopes[k] = std::pow(2.0, -(k + 1) * alibi_bias_max / n);
  if (n == num_heads) return slopes;
  // Non-power-of-two head counts take the odd-indexed slopes first, then the even-indexed ones.
  std::vector<double> reordered;
  for (int64_t k = 1; k < n; k += 2) reordered.push_back(slopes[k]);
  for (int64_t k = 0; k < n; k += 2) reordered.push_back(slopes[k]);
  reordered.resize(num_heads);
  return reordered;
}

double lowest_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return std::numeric_limits<float>::lowest();
    case at::kDouble: return std::numeric_limits<double>::lowest();
    case at::kBFloat16: return -3.3895313892515355e38;  // bfloat16 finfo.min
    case at::kHalf: return -65504.0;
    default: fail("attention mask: unsupported compute dtype {}", c10::toString(dtype));
  }
}

AttentionMasks::AttentionMasks(at::Tensor key_padding, int64_t batch, int64_t query_len, int64_t past_len,
                               at::ScalarType dtype, at::Device device, std::vector<double> alibi_slopes,
                               at::Tensor segment_ids)
    : key_padding_(std::move(key_padding)),
      segment_ids_(std::move(segment_ids)),
      batch_(batch),
      query_len_(query_len),
      past_len_(past_len),
      dtype_(dtype),
      device_(device),
      slopes_(std::move(alibi_slopes)) {
  if (segment_ids_.defined()) {
    // Segments compare queries with keys position by position, so the keys must be exactly the queries.
    FUSELLM_CHECK(past_len_ == 0, "attention mask: segment ids cannot be combined with a KV cache");
    FUSELLM_CHECK(segment_ids_.dim() == 2 && segment_ids_.size(0) == batch_ && segment_ids_.size(1) == query_len_,
                  "attention mask: segment ids must be [{}, {}]", batch_, query_len_);
  }
}

AttentionMasks::AttentionMasks(const ForwardState& state, at::ScalarType dtype, at::Device device,
                               std::vector<double> alibi_slopes)
    : AttentionMasks(state.key_padding, state.batch, state.query_len, state.past_len, dtype, device,
                     std::move(alibi_slopes), state.segment_ids) {}

const at::Tensor& AttentionMasks::get(int64_t window) {
  auto found = built_.find(window);
  if (found != built_.end()) return found->second;

  const int64_t key_len = past_len_ + query_len_;
  auto index_options = at::TensorOptions().dtype(at::kLong).device(device_);
  auto query_index = at::arange(past_len_, key_len, index_options).unsqueeze(1);  // [T, 1] absolute
  auto key_index = at::arange(key_len, index_options).unsqueeze(0);              // [1, Tk]
  auto visible = key_index <= query_index;
  if (window > 0) visible = visible.logical_and(key_index > query_index - window);
  visible = visible.view({1, 1, query_len_, key_len});
  if (key_padding_.defined())
    visible = visible.logical_and(key_padding_.to(device_).to(at::kBool).view({batch_, 1, 1, key_len}));
  if (segment_ids_.defined()) {
    auto segments = segment_ids_.to(device_).to(at::kLong);
    visible = visible.logical_and(segments.view({batch_, 1, query_len_, 1}) == segments.view({batch_, 1, 1, key_len}));
  }
  visible = visible.expand({batch_, 1, query_len_, key_len});

  at::Tensor mask;
  if (!slopes_.empty()) {
    // ALiBi relative to the last key: slope_h · (j − (Tk − 1)); a constant per row away from −slope·(i−j).
    const auto heads = static_cast<int64_t>(slopes_.size());
    auto slopes = at::tensor(slopes_, at::kDouble).to(at::kFloat).to(device_).view({1, heads, 1, 1});
    auto distance = (key_index - (key_len - 1)).to(at::kFloat).view({1, 1, 1, key_len});
    auto bias = (slopes * distance).to(dtype_).expand({batch_, heads, query_len_, key_len});
    mask = bias.masked_fill(visible.logical_not(), lowest_value(dtype_));
  } else {
    mask = at::zeros({batch_, 1, query_len_, key_len}, at::TensorOptions().dtype(dtype_).device(device_))
               .masked_fill(visible.logical_not(), lowest_value(dtype_));
  }
  return built_.emplace(window, std::move(mask)).first->second;
}

ForwardState::ForwardState(const ForwardArgs& args, at::Device device) {
  FUSELLM_CHECK(args.input_ids.defined() && args.input_ids.dim() == 2,
                "forward: input_ids must be a [batch, seq] tensor");
  batch = args.input_ids.size(0);
  query_len = args.input_ids.size(1);
  past_len = args.cache ? args.cache->length() : 0;
  auto long_options = at::TensorOptions().dtype(at::kLong).device(device);
  if (args.position_ids.defined()) {
    FUSELLM_CHECK(args.position_ids.sizes() == args.input_ids.sizes(),
                  "forward: position_ids shape differs from input_ids");
    positions = args.position_ids.to(device);
  } else {
    positions = at::arange(past_len, past_len + query_len, long_options).unsqueeze(0).expand({batch, query_len});
  }
  if (args.segment_ids.defined()) {
    // Packed documents are a training-time layout; a cache would hold keys of earlier segments.
    FUSELLM_CHECK(!args.cache, "forward: segment_ids cannot be combined with a KV cache");
    FUSELLM_CHECK(args.segment_ids.sizes() == args.input_ids.sizes(),
                  "forward: segment_ids shape [{}] differs from input_ids [{}]",
                  fmt::join(args.segment_ids.sizes().vec(), ", "), fmt::join(args.input_ids.sizes().vec(), ", "));
    FUSELLM_CHECK(at::isIntegralType(args.segment_ids.scalar_type(), /*includeBool=*/true),
                  "forward: segment_ids must be integer (got {})", c10::toString(args.segment_ids.scalar_type()));
    segment_ids = args.segment_ids.to(device).to(at::kLong);
  }
  at::Tensor current = args.attention_mask;
  if (current.defined()) {
    FUSELLM_CHECK(current.sizes() == args.input_ids.sizes(), "forward: attention_mask shape differs from input_ids");
    current = current.to(device).to(at::kLong);
  }
  if (!args.cache) {
    key_padding = current;
    return;
  }
  at::Tensor past = args.cache->attention_mask;
  if (!past.defined() && !current.defined()) return;  // everything real so far
  if (!past.defined()) past = at::ones({batch, past_len}, long_options);
  if (!current.defined()) current = at::ones({batch, query_len}, long_options);
  FUSELLM_CHECK(past.size(0) == batch, "forward: batch size {} differs from the KV cache's {}", batch, past.size(0));
  key_padding = at::cat({past.to(device).to(at::kLong), current}, 1);
  args.cache->attention_mask = key_padding;
}

std::pair<at::Tensor, at::Tensor> update_kv_cache(KVCache* cache, int64_t layer, const at::Tensor& k,
                                                  const at::Tensor& v) {
  if (!cache) return {k, v};
  return cache->append(layer, k, v);
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                  double scale) {
  const int64_t heads = q.size(1);
  FUSELLM_CHECK(heads % k.size(1) == 0, "attention: {} query heads not a multiple of {} kv heads", heads, k.size(1));
  auto out = compat::attention(q, k, v, mask, scale);  // [B, H, T, D]
  return out.transpose(1, 2).reshape({q.size(0), q.size(2), heads * q.size(3)});
}

at::Tensor split_heads(const at::Tensor& x, int64_t heads, int64_t head_dim) {
  return x.reshape({x.size(0), x.size(1), heads, head_dim}).transpose(1, 2);
}

}  // namespace fusellm::model
