// CausalLM parameter bookkeeping, config.json reading and weight loading.
#include "fusellm/model/causal_lm.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>
#include <tuple>

#include "fusellm/model/registry.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::model {

namespace {

// Appends x to `view` (a layer's keys or values), in place in `storage` when it has room.
void append_positions(at::Tensor& view, at::Tensor& storage, const at::Tensor& x, int64_t reserved) {
  const int64_t len = view.defined() ? view.size(2) : 0, t = x.size(2);
  const bool in_storage = view.defined() && storage.defined() && storage.data_ptr() == view.data_ptr() &&
                          storage.size(0) == view.size(0) && storage.size(2) >= len + t;
  if (!in_storage && (reserved <= 0 || x.requires_grad())) {  // no reservation (or autograd): concatenate
    view = view.defined() ? at::cat({view, x}, 2) : x;
    storage = at::Tensor();
    return;
  }
  if (!in_storage) {
    at::Tensor grown = at::empty({x.size(0), x.size(1), len + t + reserved, x.size(3)}, x.options());
    if (len > 0) grown.narrow(2, 0, len).copy_(view);
    storage = grown;
  }
  storage.narrow(2, len, t).copy_(x);
  view = storage.narrow(2, 0, len + t);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> KVCache::append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  if (static_cast<int64_t>(keys.size()) <= layer) {
    keys.resize(size_t(layer) + 1);
    values.resize(size_t(layer) + 1);
  }
  key_storage.resize(keys.size());
  value_storage.resize(values.size());
  append_positions(keys[size_t(layer)], key_storage[size_t(layer)], k, reserved);
  append_positions(values[size_t(layer)], value_storage[size_t(layer)], v, reserved);
  return {keys[size_t(layer)], values[size_t(layer)]};
}

KVCache KVCache::rows(const at::Tensor& index) const {
  KVCache out;
  out.reserved = reserved;
  auto select = [&](const at::Tensor& view, const at::Tensor& storage, at::Tensor& new_view, at::Tensor& new_storage) {
    if (!view.defined()) return;
    const at::Tensor idx = index.to(view.device());
    if (storage.defined() && storage.data_ptr() == view.data_ptr()) {
      new_storage = storage.index_select(0, idx);
      new_view = new_storage.narrow(2, 0, view.size(2));
    } else {
      new_view = view.index_select(0, idx);
    }
  };
  out.keys.resize(keys.size());
  out.values.resize(values.size());
  out.key_storage.resize(keys.size());
  out.value_storage.resize(values.size());
  for (size_t l = 0; l < keys.size(); ++l) {
    select(keys[l], l < key_storage.size() ? key_storage[l] : at::Tensor(), out.keys[l], out.key_storage[l]);
    select(values[l], l < value_storage.size() ? value_storage[l] : at::Tensor(), out.values[l], out.value_storage[l]);
  }
  if (attention_mask.defined()) out.attention_mask = attention_mask.index_select(0, index.to(attention_mask.device()));
  return out;
}

namespace {

std::string shape_string(at::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string join_names(const std::vector<std::string>& names, size_t limit = 12) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += fmt::format(", … ({} more)", names.size() - limit);
  return out;
}

// The first of `keys` present in the config; an Error naming config.json and the first key when none is.
int64_t required_int(const JsonView& config, std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    if (config.has(key)) return config.get<int64_t>(key);
  std::string also;
  for (auto it = keys.begin() + 1; it != keys.end(); ++it) also += (also.empty() ? "" : ", ") + std::string(*it);
  fail("{}: missing required key '{}'{}", config.source(), *keys.begin(),
       also.empty() ? "" : fmt::format(" (also accepted: {})", also));
}

std::optional<int64_t> optional_int(const JsonView& config, std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    if (config.has(key)) return config.get<int64_t>(key);
  return std::nullopt;
}

// Token ids may be an integer or a list of integers (e.g. several eos ids); the first one is kept.
std::optional<int64_t> token_id(const JsonView& config, const std::string& key) {
  if (!config.has(key)) return std::nullopt;
  const json& value = config.raw()[key];
  if (value.is_array()) {
    if (value.empty()) return std::nullopt;
    if (!value[0].is_number_integer()) fail("{}: key '{}': expected integers", config.source(), key);
    return value[0].get<int64_t>();
  }
  return config.get<int64_t>(key);
}

// Sane maxima for the sizes config.json claims, checked before anything is declared or allocated: a
// hostile or corrupt config ("num_hidden_layers": 2^31) must get its error at once, not after declaring
// millions of placeholder tensors. Each bound is far above any published model (Llama-3.1-405B: 126
// layers, hidden 16384, 128 heads, head_dim 128; the largest vocabularies ~256k; contexts up to ~10^7).
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHidden = 1 << 17;
constexpr int64_t kMaxVocab = 1 << 24;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxHeadDim = 1 << 14;
constexpr int64_t kMaxContext = int64_t{1} << 27;

void check_size_limits(const ModelConfig& cfg) {
  for (auto [value, key, limit] :
       {std::tuple{cfg.vocab_size, "vocab_size", kMaxVocab}, {cfg.hidden_size, "hidden_size", kMaxHidden},
        {cfg.num_layers, "num_hidden_layers", kMaxLayers}, {cfg.num_heads, "num_attention_heads", kMaxHeads},
        {cfg.num_kv_heads, "num_key_value_heads", kMaxHeads}})
    FUSELLM_CHECK(value <= limit, "{}: key '{}' is {}, above the sane maximum {} (a corrupt or hostile config?)",
                  cfg.source, key, value, limit);
}

// The layers a checkpoint holds: one past the largest index N in names like "model.layers.N.…",
// "gpt_neox.layers.N.…" or "transformer.blocks.N.…" (every family names a block by its index).
int64_t checkpoint_layer_count(const std::vector<std::string>& names) {
  int64_t count = 0;
  for (const std::string& name : names) {
    for (const char* marker : {".layers.", ".blocks.", ".h."}) {
      const size_t at = name.find(marker);
      if (at == std::string::npos) continue;
      size_t pos = at + std::strlen(marker), end = pos;
      while (end < name.size() && end - pos < 9 && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
      if (end > pos && end < name.size() && name[end] == '.') count = std::max<int64_t>(count, std::stoll(name.substr(pos, end - pos)) + 1);
    }
  }
  return count;
}

}  // namespace

at::Tensor CausalLM::forward(const ForwardArgs& args) {
  at::Tensor hidden = forward_hidden(args);
  const int64_t length = hidden.size(1);
  if (args.logits_to_keep > 0 && args.logits_to_keep < length)
    hidden = hidden.narrow(1, length - args.logits_to_keep, args.logits_to_keep);
  return logits_from_hidden(hidden);
}

at::Tensor CausalLM::run_block(const ForwardArgs& args, int64_t layer, const BlockFn& block,
                               const at::Tensor& hidden) {
  return args.block_runner ? args.block_runner(layer, block, hidden) : block(hidden);
}

size_t CausalLM::declare(const std::string& name, std::vector<int64_t> shape) {
  FUSELLM_CHECK(!param_index_.count(name), "model: parameter '{}' declared twice", name);
  // A meta tensor records the expected shape without allocating; load_weights replaces it.
  params_.emplace_back(name, at::empty(shape, at::TensorOptions().dtype(at::kFloat).device(at::kMeta)));
  param_index_[name] = params_.size() - 1;
  return params_.size() - 1;
}

at::Tensor& CausalLM::param(const std::string& name) {
  auto it = param_index_.find(name);
  if (it == param_index_.end())
    fail("{}: the {} model has no parameter '{}'", config_.source, config_.model_type, name);
  return params_[it->second].second;
}

int64_t CausalLM::num_parameters() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : params_) total += tensor.numel();
  return total;
}

void CausalLM::to(std::optional<at::ScalarType> dtype, at::Device device) {
  for (auto& [name, tensor] : params_) {
    at::Tensor converted = dtype && tensor.is_floating_point() ? tensor.to(device, *dtype) : tensor.to(device);
    if (!converted.is_same(tensor) && tensor.requires_grad())
      converted = converted.detach().requires_grad_(true);  // stay a leaf the optimizer can own
    tensor = converted;
  }
}

at::Device CausalLM::device() const { return params_.empty() ? at::Device(at::kCPU) : params_[0].second.device(); }

at::ScalarType CausalLM::dtype() const {
  for (const auto& [name, tensor] : params_)
    if (tensor.is_floating_point()) return tensor.scalar_type();
  return at::kFloat;
}

ModelConfig read_model_config(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  if (!fs::exists(path)) fail("{}: not found (expected a Hugging Face model directory)", path.string());
  ModelConfig cfg;
  cfg.source = path.string();
  cfg.raw = parse_json_file(path);
  FUSELLM_CHECK(cfg.raw.is_object(), "{}: expected a JSON object", cfg.source);
  const JsonView config(cfg.raw, cfg.source);
  cfg.model_type = config.get<std::string>("model_type");
  // An unknown family is the first thing to say: its other keys may not follow any known naming.
  const auto supported = registered_model_types();
  if (std::find(supported.begin(), supported.end(), cfg.model_type) == supported.end()) {
    std::string list;
    for (const auto& t : supported) list += (list.empty() ? "" : ", ") + t;
    fail("{}: unknown model_type '{}' (supported: {})", cfg.source, cfg.model_type, list);
  }

  const bool mpt = cfg.model_type == "mpt";
  // MPT names its keys after GPT-2 (d_model, n_layers, n_heads, max_seq_len); ask for those first.
  cfg.vocab_size = required_int(config, {"vocab_size"});
  cfg.hidden_size = mpt ? required_int(config, {"d_model", "hidden_size"})
                        : required_int(config, {"hidden_size", "d_model", "n_embd"});
  cfg.num_layers = mpt ? required_int(config, {"n_layers", "num_hidden_layers"})
                       : required_int(config, {"num_hidden_layers", "n_layers", "n_layer"});
  cfg.num_heads = mpt ? required_int(config, {"n_heads", "num_attention_heads"})
                      : required_int(config, {"num_attention_heads", "n_heads", "n_head"});
  cfg.num_kv_heads = optional_int(config, {"num_key_value_heads"}).value_or(cfg.num_heads);
  for (auto [value, key] : {std::pair{cfg.vocab_size, "vocab_size"}, {cfg.hidden_size, "hidden_size"},
                            {cfg.num_layers, "num_layers"}, {cfg.num_heads, "num_attention_heads"},
                            {cfg.num_kv_heads, "num_key_value_heads"}})
    FUSELLM_CHECK(value > 0, "{}: key '{}' must be positive, got {}", cfg.source, key, value);
  check_size_limits(cfg);
  FUSELLM_CHECK(cfg.num_heads % cfg.num_kv_heads == 0, "{}: num_attention_heads {} is not a multiple of "
                "num_key_value_heads {}", cfg.source, cfg.num_heads, cfg.num_kv_heads);
  if (config.has("head_dim")) {
    cfg.head_dim = config.get<int64_t>("head_dim");
    FUSELLM_CHECK(cfg.head_dim > 0 && cfg.head_dim <= kMaxHeadDim, "{}: key 'head_dim' is {}, outside 1..{}",
                  cfg.source, cfg.head_dim, kMaxHeadDim);
  } else {
    FUSELLM_CHECK(cfg.hidden_size % cfg.num_heads == 0, "{}: hidden size {} is not divisible by {} heads",
                  cfg.source, cfg.hidden_size, cfg.num_heads);
    cfg.head_dim = cfg.hidden_size / cfg.num_heads;
  }

  // Defaults of the HF config classes when the key is absent.
  static const std::map<std::string, int64_t> default_context = {
      {"llama", 2048}, {"mistral", 4096 * 32}, {"qwen2", 32768}, {"gpt_neox", 2048}, {"mpt", 2048}};
  auto context = optional_int(config, {"max_position_embeddings", "max_seq_len", "n_positions"});
  auto fallback = default_context.find(cfg.model_type);
  cfg.max_context = context.value_or(fallback != default_context.end() ? fallback->second : 2048);
  FUSELLM_CHECK(cfg.max_context > 0 && cfg.max_context <= kMaxContext, "{}: the context length {} is outside 1..{}",
                cfg.source, cfg.max_context, kMaxContext);
  // MPT ties its head to wte (mpt-7b's config has no key; PretrainedConfig's default is true); the llama,
  // mistral, qwen2 and gpt_neox config classes default to untied.
  cfg.tie_word_embeddings = config.get_or<bool>("tie_word_embeddings", mpt);
  cfg.bos_token_id = token_id(config, "bos_token_id");
  cfg.eos_token_id = token_id(config, "eos_token_id");
  cfg.pad_token_id = token_id(config, "pad_token_id");
  return cfg;
}

void load_weights(CausalLM& model, const io::CheckpointReader& reader, const io::LoadOptions& options) {
  const ModelConfig& cfg = model.config();
  const std::string dir = fs::path(cfg.source).parent_path().string();
  std::vector<std::string> missing;
  for (const auto& [name, placeholder] : model.params_)
    if (!reader.contains(name)) missing.push_back(name);
  if (!missing.empty())
    fail("{}: checkpoint {} lacks {} tensor(s) the {} model needs: {}", dir, reader.describe(), missing.size(),
         cfg.model_type, join_names(missing));
  for (const auto& [name, placeholder] : model.params_) {
    const auto stored = reader.shape(name);
    if (at::IntArrayRef(stored) != placeholder.sizes())
      fail("{}: tensor '{}' has shape {} in {}, but config.json implies {}", dir, name, shape_string(stored),
           reader.describe(), shape_string(placeholder.sizes()));
  }

  std::vector<std::string> unexpected;
  for (const auto& name : reader.names()) {
    if (model.param_index_.count(name)) continue;
    if (name == "lm_head.weight" && cfg.tie_word_embeddings) {
      spdlog::debug("{}: ignoring stored lm_head.weight (tie_word_embeddings: the head is the embedding)", dir);
      continue;
    }
    unexpected.push_back(name);
  }
  if (!unexpected.empty())
    spdlog::warn("{}: ignoring {} tensor(s) the {} model does not use: {}", dir, unexpected.size(), cfg.model_type,
                 join_names(unexpected));

  // Load everything first so a failure leaves the model untouched.
  std::vector<at::Tensor> loaded;
  loaded.reserve(model.params_.size());
  for (const auto& [name, placeholder] : model.params_) loaded.push_back(reader.load(name, options));
  for (size_t i = 0; i < loaded.size(); ++i) model.params_[i].second = std::move(loaded[i]);
}

std::unique_ptr<CausalLM> load_model(const fs::path& dir, const io::LoadOptions& options) {
  ModelConfig config = read_model_config(dir);
  auto reader = io::open_checkpoint(dir);
  // The layer count config.json claims must be what the weights hold, checked before the model declares
  // a placeholder per layer (the per-tensor check in load_weights would come only after that loop).
  const int64_t stored_layers = checkpoint_layer_count(reader->names());
  if (stored_layers != config.num_layers)
    fail("{}: claims {} layers, but {} holds {}", config.source, config.num_layers, reader->describe(), stored_layers);
  auto model = create_model(config);
  load_weights(*model, *reader, options);
  spdlog::debug("{}: loaded {} ({} parameters, {})", dir.string(), model->config().model_type,
                model->num_parameters(), c10::toString(model->dtype()));
  return model;
}

}  // namespace fusellm::model
