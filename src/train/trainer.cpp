// The training loop. Per optimizer step: take the step's global batch from the source, run this rank's
// micro-batches (loss / grad_accum backward), average gradients over ranks, clip, AdamW at the scheduled
// learning rate. Rank 0 logs metrics and writes checkpoints.
#include "fusellm/train/trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "fusellm/io/checkpoint.hpp"
#include "fusellm/train/activation_checkpoint.hpp"
#include "fusellm/train/checkpoint.hpp"
#include "fusellm/train/flops.hpp"
#include "fusellm/train/optimizer.hpp"
#include "fusellm/train/precision.hpp"
#include "fusellm/train/sharded_state.hpp"
#include "fusellm/train/zero.hpp"
#include "fusellm/util/fault_hooks.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"
#include "fusellm/util/progress.hpp"

namespace fusellm::train {

at::Tensor clm_loss(model::CausalLM& model, const at::Tensor& hidden, const TrainBatch& batch) {
  const int64_t t = hidden.size(1);
  at::Tensor logits = model.logits_from_hidden(hidden.narrow(1, 0, t - 1));  // float32 [B, T-1, V]
  at::Tensor targets = batch.labels.narrow(1, 1, t - 1).to(logits.device());
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}), {},
                                at::Reduction::Mean, -100);
}

LossFn make_clm_loss() {
  return [](model::CausalLM& model, const at::Tensor& hidden, const TrainBatch& batch) {
    LossParts parts;
    parts.total = clm_loss(model, hidden, batch);
    parts.clm = parts.total.item<double>();
    return parts;
  };
}

void check_fits(const TrainConfig& cfg, const model::ModelConfig& model_cfg, int64_t num_sequences, int world_size,
                const std::string& source) {
  if (model_cfg.max_context > 0 && cfg.max_length > model_cfg.max_context)
    fail("{}: train.max_length {} exceeds the target model's context of {} positions ({})", source, cfg.max_length,
         model_cfg.max_context, model_cfg.source);
  const int64_t global = cfg.global_batch(world_size);
  if (num_sequences < global)
    fail("{}: train: the data packs into {} sequences of {} tokens, fewer than one global batch of {} "
         "(micro_batch {} × grad_accum {} × {} processes)", source, num_sequences, cfg.max_length, global,
         cfg.micro_batch, cfg.grad_accum, world_size);
}

Trainer::Trainer(TrainerOptions options, std::unique_ptr<model::CausalLM> model,
                 std::unique_ptr<TrainBatchSource> source, LossFn loss)
    : opt_(std::move(options)), model_(std::move(model)), source_(std::move(source)), loss_(std::move(loss)) {
  const TrainConfig& cfg = opt_.config;
  const int world = opt_.reducer ? opt_.reducer->world_size() : 1;
  // Own, writable copies of the weights (loaded tensors may alias read-only maps), as leaves with grads.
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (auto& [name, t] : model_->parameters()) {
    if (!at::isFloatingType(t.scalar_type())) continue;
    // ZeRO copies every parameter into its bucket buffer anyway: a clone first would be one more full
    // copy at the peak of start-up.
    t = (cfg.zero_stage > 0 ? t.detach() : t.detach().clone()).requires_grad_(true);
    // ZeRO frees each original as soon as it is in its bucket: no second handle may keep it alive.
    if (cfg.zero_stage == 0) named.emplace_back(name, t);
  }
  if (cfg.zero_stage > 0) {
    std::shared_ptr<Collectives> collectives =
        opt_.reducer ? opt_.reducer->collectives() : make_single_process_collectives();
    FUSELLM_CHECK(collectives, "train.zero_stage {}: this gradient reducer has no reduce-scatter", cfg.zero_stage);
    const Precision precision = resolve_precision(cfg.precision, model_->device());
    ZeroOptions zo;
    zo.stage = static_cast<int>(cfg.zero_stage);
    zo.bucket_bytes = static_cast<size_t>(cfg.bucket_mb * (1 << 20));
    zo.overlap = cfg.overlap_comm;
    zo.master_dtype = master_dtype(precision);
    // bf16 training keeps a bf16 replica to compute with and fp32 master weights only for the owned chunks.
    zo.param_dtype = precision == Precision::Bf16 ? at::kBFloat16 : zo.master_dtype;
    zo.beta1 = cfg.beta1;
    zo.beta2 = cfg.beta2;
    zo.eps = cfg.eps;
    zo.weight_decay = cfg.weight_decay;
    zero_ = std::make_unique<ZeroOptimizer>(model_->parameters(), collectives, zo);
    if (!opt_.reducer || opt_.reducer->rank() == 0) spdlog::info("train: {}", zero_->describe());
  } else {
    optimizer_ = std::make_unique<AdamW>(named, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
  }
  for (auto& [name, t] : model_->parameters())
    if (t.requires_grad()) params_.push_back(t);
  flops_per_token_ = training_flops_per_token(matmul_parameters(*model_), model_->config(), cfg.max_length);
  peak_flops_ = peak_flops(model_->device(), cfg.peak_tflops);
  total_steps_ = cfg.max_steps > 0 ? cfg.max_steps : cfg.epochs * source_->steps_per_epoch(cfg.global_batch(world));
}

Trainer::~Trainer() = default;

namespace {

// Test hook: FUSELLM_TRAIN_KILL_AT_STEP=N kills the process with SIGKILL right after optimizer step N.
void maybe_kill_at_step(int64_t step) { maybe_kill_self("FUSELLM_TRAIN_KILL_AT_STEP", step); }

// Keeps only the metric lines of steps already done (a killed run may have logged past its checkpoint).
void truncate_metrics(const fs::path& path, int64_t last_step) {
  if (!fs::exists(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t(0)) <= last_step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace

void Trainer::restore() {
  auto latest = latest_checkpoint(opt_.config.output_dir);
  if (!latest) {
    spdlog::info("--resume: no checkpoint in {}, starting from the beginning", opt_.config.output_dir.string());
    return;
  }
  TrainState state = load_train_state(*latest);
  FUSELLM_CHECK(state.total_steps == total_steps_,
                "{}: the checkpoint was made for {} total steps, this run has {}: the config or data changed",
                latest->string(), state.total_steps, total_steps_);
  const std::unique_ptr<OptimizerStateSource> saved = open_optimizer_state(*latest, state);
  if (zero_) {
    zero_->load_state(*saved, state.step);  // master weights too; then all-gathered into the parameters
  } else {
    auto reader = io::open_checkpoint(*latest);
    at::NoGradGuard no_grad;
    io::NamedTensors moments;
    for (auto& [name, t] : model_->parameters()) {
      if (!t.requires_grad()) continue;
      t.copy_(reader->load(name, {}));
      for (const char* kind : {"exp_avg", "exp_avg_sq"})  // from full tensors or ZeRO shards alike
        moments.emplace_back(std::string(kind) + "." + name, saved->read(kind, name, 0, t.numel()).view(t.sizes()));
    }
    optimizer_->load_state(moments, state.step, latest->string());
  }
  source_->restore(state.loader_position);
  if (state.rng_state.defined()) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();  // shares the default generator
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state.rng_state);
  }
  start_step_ = state.step;
  spdlog::info("resumed from {} at step {}/{}", latest->string(), start_step_, total_steps_);
}

void Trainer::save(int64_t step) {
  const bool main_rank = !opt_.reducer || opt_.reducer->rank() == 0;
  TrainState state;
  state.step = step;
  state.total_steps = total_steps_;
  state.loader_position = source_->position();
  state.config = opt_.config.to_json();
  state.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  std::optional<fs::path> begun;
  if (zero_) {  // every rank writes its shard into rank 0's temp directory, then rank 0 completes it
    const int rank = opt_.reducer ? opt_.reducer->rank() : 0, world = opt_.reducer ? opt_.reducer->world_size() : 1;
    if (main_rank) begun = begin_checkpoint(opt_.config.output_dir, step);
    if (opt_.reducer) opt_.reducer->barrier();
    const fs::path tmp = opt_.config.output_dir / "checkpoints" / (".tmp-" + checkpoint_name(step));
    maybe_kill_self("FUSELLM_TRAIN_KILL_IN_SAVE", step);  // a rank dying while the shards are written
    write_zero_shard(tmp, *zero_, rank, world);
    if (opt_.reducer) opt_.reducer->barrier();
    if (!main_rank) return;
    state.zero = zero_manifest(tmp, zero_->stage(), world);
  } else {
    state.optimizer = optimizer_->state_tensors();
  }
  fs::path dir = save_checkpoint(opt_.config.output_dir, opt_.model_dir, model_->parameters(), state,
                                 opt_.config.keep_last, begun);
  spdlog::info("saved checkpoint {}", dir.string());
}

namespace {

struct StepMemory {
  int64_t optimizer_bytes = 0, gradient_bytes = 0, comm_peak_bytes = 0;
};

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

// Positions whose next token is a label (what the CLM mean and the fusion term average over).
int64_t predicted_tokens(const TrainBatch& batch) {
  const int64_t t = batch.labels.size(1);
  return t < 2 ? 0 : batch.labels.narrow(1, 1, t - 1).ne(-100).sum().item<int64_t>();
}

}  // namespace

StepMetrics Trainer::train_step(int64_t step) {
  const TrainConfig& cfg = opt_.config;
  const int rank = opt_.reducer ? opt_.reducer->rank() : 0;
  const int world = opt_.reducer ? opt_.reducer->world_size() : 1;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int64_t> global = source_->next_global_batch(cfg.global_batch(world));
  const int64_t per_rank = cfg.micro_batch * cfg.grad_accum;
  const Precision precision = resolve_precision(cfg.precision, model_->device());
  // This rank's micro-batches, built up front: the step's loss is the mean over every predicted token of the
  // global batch, so each micro-batch's mean is weighted by its share of those tokens. With variable-length
  // (padded) sequences this makes N ranks × micro-batches equal one process with the whole batch.
  std::vector<TrainBatch> micro;
  std::vector<double> targets;  // predicted tokens per micro-batch
  double local_targets = 0;
  for (int64_t k = 0; k < cfg.grad_accum; ++k) {
    auto begin = global.begin() + rank * per_rank + k * cfg.micro_batch;
    micro.push_back(source_->make_batch(std::vector<int64_t>(begin, begin + cfg.micro_batch)));
    targets.push_back(static_cast<double>(predicted_tokens(micro.back())));
    local_targets += targets.back();
  }
  const double global_targets =
      std::max(1.0, opt_.reducer ? opt_.reducer->sum({local_targets})[0] : local_targets);
  double loss_sum = 0, clm_sum = 0, fusion_sum = 0, tokens = 0;
  for (int64_t k = 0; k < cfg.grad_accum; ++k) {
    const TrainBatch& batch = micro[size_t(k)];
    const double share = targets[size_t(k)] / global_targets;
    model::ForwardArgs args;
    args.input_ids = batch.input_ids.to(model_->device());
    if (cfg.activation_checkpointing) args.block_runner = checkpointing_block_runner();
    if (batch.position_ids.defined()) args.position_ids = batch.position_ids.to(model_->device());
    if (batch.segment_ids.defined()) args.segment_ids = batch.segment_ids.to(model_->device());
    LossParts parts;
    {
      AutocastScope autocast(precision, model_->device());  // forward and loss only; backward follows the graph
      at::Tensor hidden = model_->forward_hidden(args);
      parts = loss_(*model_, hidden, batch);
    }
    if (zero_) {
      zero_->begin_backward(k + 1 == cfg.grad_accum);
    } else if (opt_.reducer && k + 1 == cfg.grad_accum) {
      opt_.reducer->begin_last_backward(params_);
    }
    // × world: the reducer averages gradients over ranks, and the share is of the global token count.
    (parts.total * (share * static_cast<double>(world))).backward();
    if (zero_) zero_->end_backward();
    loss_sum += parts.total.item<double>() * share;
    clm_sum += parts.clm * share;
    fusion_sum += parts.fusion * share;
    tokens += static_cast<double>(batch.tokens());
  }
  if (opt_.reducer) {
    if (!zero_) opt_.reducer->finish(params_);
    const std::vector<double> summed = opt_.reducer->sum({loss_sum, clm_sum, fusion_sum, tokens});
    loss_sum = summed[0];
    clm_sum = summed[1];
    fusion_sum = summed[2];
    tokens = summed[3];
  }
  const double grad_norm = zero_ ? zero_->clip_grad_norm(cfg.clip) : clip_grad_norm(params_, cfg.clip);
  const double lr = scheduled_lr(cfg, step, total_steps_);
  StepMemory memory;
  if (zero_) {
    zero_->step(lr);
    const ZeroMemory z = zero_->memory();
    memory = {z.optimizer_bytes, z.gradient_bytes, z.comm_peak_bytes};
  } else {
    for (const auto& p : params_)
      if (p.grad().defined()) memory.gradient_bytes += static_cast<int64_t>(p.grad().nbytes());
    for (const auto& [name, t] : optimizer_->state_tensors()) memory.optimizer_bytes += static_cast<int64_t>(t.nbytes());
    optimizer_->step(lr);
    optimizer_->zero_grad();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  StepMetrics m{step + 1, loss_sum, clm_sum, fusion_sum, lr, grad_norm, tokens / std::max(seconds, 1e-9), tokens};
  m.optimizer_bytes = memory.optimizer_bytes;
  m.gradient_bytes = memory.gradient_bytes;
  m.comm_peak_bytes = memory.comm_peak_bytes;
  m.peak_rss_bytes = peak_rss_bytes();
  m.tflops = flops_per_token_ * m.tokens_per_s / static_cast<double>(world) / 1e12;
  if (peak_flops_) m.mfu = m.tflops * 1e12 / *peak_flops_;
  return m;
}

std::vector<StepMetrics> Trainer::run() {
  const TrainConfig& cfg = opt_.config;
  const bool main_rank = !opt_.reducer || opt_.reducer->rank() == 0;
  if (opt_.resume) {
    restore();
  } else if (latest_checkpoint(cfg.output_dir)) {
    fail("{}: holds checkpoints of an earlier run; pass --resume to continue it or choose another train.output_dir",
         cfg.output_dir.string());
  }
  const fs::path metrics_path = cfg.output_dir / "metrics.jsonl";
  std::ofstream metrics;
  if (main_rank) {
    fs::create_directories(cfg.output_dir);
    if (start_step_ > 0) truncate_metrics(metrics_path, start_step_);
    metrics.open(metrics_path, start_step_ > 0 ? std::ios::app : std::ios::trunc);
    FUSELLM_CHECK(metrics.good(), "{}: cannot open for writing", metrics_path.string());
  }
  std::unique_ptr<Progress> progress;
  if (main_rank && !opt_.quiet) {
    progress = std::make_unique<Progress>("train", static_cast<uint64_t>(total_steps_), "steps", "tok");
    progress->set_done(static_cast<uint64_t>(start_step_));
  }
  std::vector<StepMetrics> done;
  for (int64_t step = start_step_; step < total_steps_; ++step) {
    StepMetrics m = train_step(step);
    done.push_back(m);
    if (progress) progress->add(1, static_cast<uint64_t>(m.tokens));
    maybe_kill_at_step(m.step);
    const bool last = m.step == total_steps_;
    const bool save_now = (cfg.save_every > 0 && m.step % cfg.save_every == 0) || last;
    if (!main_rank) {
      if (save_now && zero_) save(m.step);  // its shard
      if (save_now && opt_.reducer) opt_.reducer->barrier();  // wait for rank 0's checkpoint so no rank races ahead
      continue;
    }
    json line = {{"step", m.step}, {"epoch", source_->epoch()}, {"loss", m.loss}, {"clm", m.clm},
                 {"fusion", m.fusion}, {"lr", m.lr}, {"grad_norm", m.grad_norm}, {"tokens_per_s", m.tokens_per_s},
                 {"tflops", m.tflops}, {"mfu", m.mfu >= 0 ? json(m.mfu) : json()},
                 {"optimizer_bytes", m.optimizer_bytes}, {"gradient_bytes", m.gradient_bytes},
                 {"comm_peak_bytes", m.comm_peak_bytes}, {"peak_rss_bytes", m.peak_rss_bytes}};
    metrics << line.dump() << "\n";
    metrics.flush();
    if (m.step % cfg.log_every == 0 || last)
      spdlog::info("step {}/{} loss {:.4f} clm {:.4f} fusion {:.4f} lr {:.3e} grad_norm {:.3f} {:.0f} tok/s {:.3g} "
                   "TFLOP/s{}", m.step, total_steps_, m.loss, m.clm, m.fusion, m.lr, m.grad_norm, m.tokens_per_s,
                   m.tflops, m.mfu >= 0 ? fmt::format(" MFU {:.1f}%", 100 * m.mfu) : std::string());
    if (save_now) {
      save(m.step);
      if (opt_.reducer) opt_.reducer->barrier();
    }
  }
  if (progress) progress->finish();
  return done;
}

}  // namespace fusellm::train
