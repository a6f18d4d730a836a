// Per-rank memory, fit and throughput of a training configuration, from the model's config alone.
#include "fusellm/train/memory_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "fusellm/util/error.hpp"

namespace fusellm::train {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct LayerShape {
  int64_t per_layer = 0, embed = 0, head = 0, final_norm = 0;
  int64_t largest_matrix = 0;  // the biggest weight inside a layer (one leaf module)
};

LayerShape layer_shape(const model::ModelConfig& cfg) {
  const JsonView c = cfg.view();
  const int64_t h = cfg.hidden_size, v = cfg.vocab_size;
  const int64_t q_dim = cfg.num_heads * cfg.head_dim, kv_dim = cfg.num_kv_heads * cfg.head_dim;
  LayerShape s;
  s.embed = v * h;
  if (cfg.model_type == "llama" || cfg.model_type == "mistral" || cfg.model_type == "qwen2") {
    const int64_t i = c.get<int64_t>("intermediate_size");
    const bool attention_bias = cfg.model_type == "llama" && c.get_or<bool>("attention_bias", false);
    const bool qkv_bias = cfg.model_type == "qwen2" || attention_bias;
    const bool mlp_bias = cfg.model_type == "llama" && c.get_or<bool>("mlp_bias", false);
    s.per_layer = h * q_dim + 2 * h * kv_dim + q_dim * h + 3 * h * i + 2 * h;
    s.largest_matrix = std::max(h * i, h * q_dim);
    if (qkv_bias) s.per_layer += q_dim + 2 * kv_dim;
    if (attention_bias) s.per_layer += h;
    if (mlp_bias) s.per_layer += 2 * i + h;
    s.final_norm = h;
  } else if (cfg.model_type == "gpt_neox") {
    const int64_t i = c.get_or<int64_t>("intermediate_size", 4 * h);
    s.per_layer = (h * 3 * h + 3 * h) + (h * h + h) + (h * i + i) + (i * h + h) + 4 * h;  // qkv, dense, MLP, 2 LNs
    s.largest_matrix = std::max(3 * h * h + 3 * h, h * i + i);
    s.final_norm = 2 * h;
  } else if (cfg.model_type == "mpt") {
    const int64_t ffn = static_cast<int64_t>(c.get_or<double>("expansion_ratio", 4.0) * double(h));
    const bool bias = !c.get_or<bool>("no_bias", true);
    s.per_layer = 3 * h * h + h * h + 2 * h * ffn + 2 * h + (bias ? 3 * h + h + ffn + h + 2 * h : 0);
    s.largest_matrix = std::max(3 * h * h, h * ffn);
    s.final_norm = bias ? 2 * h : h;
  } else {
    fail("{}: plan: model_type '{}' has no parameter formula (llama, mistral, qwen2, gpt_neox, mpt)", cfg.source,
         cfg.model_type);
  }
  s.head = cfg.tie_word_embeddings ? 0 : v * h;
  return s;
}

double precision_bytes(const std::string& p) { return p == "fp64" ? 8 : p == "fp32" ? 4 : 2; }

}  // namespace

int64_t count_parameters(const model::ModelConfig& cfg) {
  const LayerShape s = layer_shape(cfg);
  return s.embed + cfg.num_layers * s.per_layer + s.final_norm + s.head;
}

int64_t largest_layer_parameters(const model::ModelConfig& cfg) {
  const LayerShape s = layer_shape(cfg);
  return std::max({s.embed, s.head, s.largest_matrix});
}

double deepspeed_zero2_bytes(int64_t params, int gpus) {
  // gpu_mem = 2·P + int(18·P / gpus)  (2 bf16 params; 18 = 2 bf16 grads + 4 fp32 grads + 4 fp32 params + 8 Adam)
  return 2.0 * double(params) + std::floor(18.0 * double(params) / gpus);
}

double deepspeed_zero3_bytes(int64_t params, int64_t largest_layer, int gpus) {
  return 4.0 * double(largest_layer) + std::floor(18.0 * double(params) / gpus);
}

double accelerate_fp32_bytes(const model::ModelConfig& cfg) {
  const LayerShape s = layer_shape(cfg);  // AutoModel builds the base model: no LM head
  return 4.0 * double(s.embed + cfg.num_layers * s.per_layer + s.final_norm);
}

namespace {

// Everything but the micro-batch-dependent lines, and those for micro-batch b.
std::vector<PlanLine> lines_for(const PlanInput& in, int64_t params, int64_t b) {
  const double P = double(params), N = in.world_size;
  const double pb = precision_bytes(in.precision);
  const double master = in.precision == "fp64" ? 8 : 4;  // master weights, moments, gradient partition
  const bool bf16 = in.precision == "bf16";
  std::vector<PlanLine> out;
  if (in.zero_stage == 0) {
    out.push_back({"weights (master, replicated)", master * P, fmt::format("{}·P", master)});
    if (bf16) out.push_back({"autocast bf16 weight copies", 2 * P, "2·P"});
    out.push_back({"gradients (replicated)", master * P, fmt::format("{}·P", master)});
    out.push_back({"AdamW moments", 2 * master * P, fmt::format("{}·P", 2 * master)});
  } else {
    out.push_back({bf16 ? "weights (bf16, replicated)" : "weights (replicated, also the master)", pb * P,
                   fmt::format("{}·P", pb)});
    if (bf16) out.push_back({"master weights (sharded)", master * P / N, fmt::format("{}·P/N", master)});
    out.push_back({"AdamW moments (sharded)", 2 * master * P / N, fmt::format("{}·P/N", 2 * master)});
    out.push_back({"gradient partition (sharded)", master * P / N, fmt::format("{}·P/N", master)});
    if (in.zero_stage == 1) out.push_back({"full gradients (stage 1)", pb * P, fmt::format("{}·P", pb)});
  }
  const double bucket = in.bucket_mb * (1 << 20);
  if (N > 1)
    out.push_back({"gradient buckets in flight",
                   // ZeRO-0's overlapped all-reduce keeps every bucket's flat copy until backward ends
                   in.zero_stage == 0 ? master * P : 2 * bucket * (1 + 1 / N),
                   in.zero_stage == 0 ? "flat copies of all gradients" : "2 buckets × (1 + 1/N)"});

  const double s = double(in.seq_len), h = double(in.model.hidden_size), a = double(in.model.num_heads),
               L = double(in.model.num_layers), V = double(in.model.vocab_size), bb = double(b);
  // The formula counts 16-bit activations; float32 and float64 training keep them in 4 or 8 bytes.
  const double act_scale = bf16 ? 1.0 : pb / 2.0;
  const double layer = (34 * s * bb * h + (in.flash_attention ? 0 : 5 * a * s * s * bb)) * act_scale;
  if (in.activation_checkpointing) {
    out.push_back({"activations (checkpointed)", (L * 2 * s * bb * h) * act_scale + layer,
                   in.flash_attention ? "L·2sbh + one layer's 34sbh" : "L·2sbh + one layer's 34sbh + 5as²b"});
  } else {
    out.push_back({"activations", L * layer, in.flash_attention ? "L·34sbh" : "L·(34sbh + 5as²b)"});
  }
  // Logits in float32 [b, s, V], their log-softmax and the gradient (the fusion loss works on the same
  // tensor; its sparse top-k targets are small).
  out.push_back({"logits, log-softmax, gradient", 3 * 4 * bb * s * V, "3 × 4·b·s·V"});
  if (in.fused_sources > 0)
    out.push_back({"aligned targets", bb * s * in.fused_sources * in.top_k * 8.0, "b·s·K·k·8"});
  out.push_back({"runtime reserve", in.reserve_gib * kGiB, "CUDA context, allocator, workspace"});
  return out;
}

double sum(const std::vector<PlanLine>& lines) {
  double t = 0;
  for (const auto& l : lines) t += l.bytes;
  return t;
}

}  // namespace

PlanResult plan_memory(const PlanInput& in) {
  FUSELLM_CHECK(in.world_size >= 1 && in.micro_batch >= 1 && in.seq_len >= 1,
                "plan: world size, micro-batch and sequence length must be positive");
  FUSELLM_CHECK(in.zero_stage >= 0 && in.zero_stage <= 2, "plan: zero stage {} is not 0, 1 or 2", in.zero_stage);
  PlanResult r;
  r.parameters = count_parameters(in.model);
  r.largest_layer = largest_layer_parameters(in.model);
  r.lines = lines_for(in, r.parameters, in.micro_batch);
  r.total_bytes = sum(r.lines);
  const double capacity = in.device_gib * kGiB;
  r.fits = r.total_bytes <= capacity;
  for (int64_t b = 1; b <= 4096 && sum(lines_for(in, r.parameters, b)) <= capacity; b *= 2)
    r.largest_fitting_micro_batch = b;
  if (r.largest_fitting_micro_batch > 0)  // refine between the last power of two that fits and the next
    for (int64_t b = r.largest_fitting_micro_batch + 1; b < 2 * r.largest_fitting_micro_batch; ++b) {
      if (sum(lines_for(in, r.parameters, b)) > capacity) break;
      r.largest_fitting_micro_batch = b;
    }
  // 6·N + 12·L·h·s FLOPs per token (train/flops.hpp), N without the input embedding (a lookup).
  const LayerShape shape = layer_shape(in.model);
  const double matmul = double(r.parameters - shape.embed + (in.model.tie_word_embeddings ? shape.embed : 0));
  const double flops_per_token =
      6 * matmul + 12.0 * double(in.model.num_layers) * double(in.model.hidden_size) * double(in.seq_len);
  r.tokens_per_s = in.mfu * in.peak_tflops * 1e12 * in.world_size / flops_per_token;
  if (in.tokens > 0) r.wall_hours = in.tokens / r.tokens_per_s / 3600;
  // The aligned store: per token and source, top-k (id int32 + log-probability fp16) plus the token's own id.
  r.store_bytes = in.tokens * (4 + in.fused_sources * in.top_k * 6.0);
  return r;
}

std::string format_plan(const PlanInput& in, const PlanResult& r) {
  std::string out;
  out += fmt::format("model {} ({}): {:.3f} B parameters (P = {}), {} layers, hidden {}, vocab {}\n",
                     in.model.source, in.model.model_type, double(r.parameters) / 1e9, r.parameters,
                     in.model.num_layers, in.model.hidden_size, in.model.vocab_size);
  out += fmt::format("setup: {} ranks (N), ZeRO-{}, {}, micro-batch {} × {} tokens, grad_accum {}, activation "
                     "checkpointing {}, FlashAttention {}\n\n",
                     in.world_size, in.zero_stage, in.precision, in.micro_batch, in.seq_len, in.grad_accum,
                     in.activation_checkpointing ? "on" : "off", in.flash_attention ? "assumed" : "off");
  out += fmt::format("{:<34} {:>10}  {}\n", "per rank", "GiB", "formula");
  for (const auto& l : r.lines) out += fmt::format("{:<34} {:>10.2f}  {}\n", l.what, l.bytes / kGiB, l.formula);
  out += fmt::format("{:<34} {:>10.2f}\n", "total", r.total_bytes / kGiB);
  out += fmt::format("\n{} on a {:.2f} GiB device: {}\n", r.fits ? "fits" : "does not fit", in.device_gib,
                     r.largest_fitting_micro_batch > 0
                         ? fmt::format("largest micro-batch that fits: {}", r.largest_fitting_micro_batch)
                         : std::string("not even micro-batch 1 fits"));
  out += fmt::format("\nthroughput at {:.0f}% MFU of {:.0f} TFLOP/s per device: {:.0f} tokens/s over {} ranks",
                     100 * in.mfu, in.peak_tflops, r.tokens_per_s, in.world_size);
  if (in.tokens > 0)
    out += fmt::format("; {:.3g} tokens: {:.1f} h; aligned store on disk ≈ {:.1f} GiB", in.tokens, r.wall_hours,
                       r.store_bytes / kGiB);
  out += "\n\nfor comparison, per GPU, model states only:\n";
  out += fmt::format("  DeepSpeed estimate_zero2 (2P + 18P/N):          {:.2f} GiB\n",
                     deepspeed_zero2_bytes(r.parameters, in.world_size) / kGiB);
  out += fmt::format("  DeepSpeed estimate_zero3 (4·largest + 18P/N):   {:.2f} GiB\n",
                     deepspeed_zero3_bytes(r.parameters, r.largest_layer, in.world_size) / kGiB);
  const double acc = accelerate_fp32_bytes(in.model);
  out += fmt::format("  accelerate estimate-memory float32: {:.2f} GB weights, {:.2f} GB training with Adam\n",
                     acc / kGiB, 4 * acc / kGiB);
  return out;
}

}  // namespace fusellm::train
