// `fusellm plan --config C | --model DIR [--world-size N --micro-batch B --seq L …]`: per-rank memory,
// fits / does not fit, the largest micro-batch that fits, throughput and wall time — from config.json
// and the train settings alone, in well under a second (train/memory_plan.hpp, docs/plan.md).
#include <iostream>
#include <optional>

#include "command.hpp"
#include "fusellm/train/memory_plan.hpp"
#include "fusellm/train/train_run.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace {

using namespace fusellm;

struct PlanFlags {
  std::string config, model, precision, gpu = "a100-40gb";
  std::optional<int> world_size, zero_stage, sources;
  std::optional<int64_t> micro_batch, grad_accum, seq;
  std::optional<bool> checkpointing;
  bool no_flash = false;
  std::optional<double> device_gib, peak_tflops, reserve_gib;
  double mfu = 0.4, tokens = 0;
};

// Usable memory as PyTorch reports it and peak dense bf16 TFLOP/s.
struct Gpu {
  const char* name;
  double gib, tflops;
};
constexpr Gpu kGpus[] = {{"a100-40gb", 39.39, 312}, {"a100-80gb", 79.15, 312}, {"h100-80gb", 79.1, 989},
                         {"h200", 139.8, 989}};

int run(const PlanFlags& f) {
  FUSELLM_CHECK(!f.config.empty() || !f.model.empty(), "plan: give --config C or --model DIR");
  train::PlanInput in;
  fs::path model_dir;
  if (!f.config.empty()) {
    const ExperimentConfig config = load_experiment_config(f.config);
    const train::TrainConfig cfg = train::train_config_of(config);
    model_dir = config.target().path;
    in.micro_batch = cfg.micro_batch;
    in.grad_accum = cfg.grad_accum;
    in.seq_len = cfg.max_length;
    in.zero_stage = static_cast<int>(cfg.zero_stage);
    in.precision = cfg.precision == "auto" ? "bf16" : cfg.precision;  // auto = bf16 on a GPU
    in.activation_checkpointing = cfg.activation_checkpointing;
    in.bucket_mb = cfg.bucket_mb;
    in.top_k = config.infer.top_k;
    if (config.reserved_sections.count("fusion") && !config.reserved_sections.at("fusion").is_null())
      for (const auto& m : config.models) in.fused_sources += m.role == ModelRole::Source ? 1 : 0;
  }
  if (!f.model.empty()) {
    fs::path p = f.model;
    model_dir = p.filename() == "config.json" ? p.parent_path() : p;
  }
  FUSELLM_CHECK(fs::exists(model_dir / "config.json"),
                "{}: no config.json (the target is not downloaded here?); pass --model DIR|config.json",
                model_dir.string());
  in.model = model::read_model_config(model_dir);
  const Gpu* gpu = nullptr;
  for (const Gpu& g : kGpus)
    if (f.gpu == g.name) gpu = &g;
  FUSELLM_CHECK(gpu, "--gpu: '{}' is not known (a100-40gb, a100-80gb, h100-80gb, h200); or give --device-gib", f.gpu);
  in.device_gib = f.device_gib.value_or(gpu->gib);
  in.peak_tflops = f.peak_tflops.value_or(gpu->tflops);
  in.world_size = f.world_size.value_or(8);
  if (f.zero_stage) in.zero_stage = *f.zero_stage;
  if (f.micro_batch) in.micro_batch = *f.micro_batch;
  if (f.grad_accum) in.grad_accum = *f.grad_accum;
  if (f.seq) in.seq_len = *f.seq;
  if (f.checkpointing) in.activation_checkpointing = *f.checkpointing;
  if (f.sources) in.fused_sources = *f.sources;
  if (!f.precision.empty()) in.precision = f.precision;
  in.flash_attention = !f.no_flash;
  if (f.reserve_gib) in.reserve_gib = *f.reserve_gib;
  in.mfu = f.mfu;
  in.tokens = f.tokens;
  const train::PlanResult r = train::plan_memory(in);
  std::cout << train::format_plan(in, r);
  return 0;
}

cli::Action setup(CLI::App& app) {
  auto f = std::make_shared<PlanFlags>();
  app.add_option("--config", f->config, "experiment config: its target model and train section");
  app.add_option("--model", f->model, "HF model directory or its config.json (overrides the config's target)");
  app.add_option("--world-size", f->world_size, "ranks (GPUs) of data parallelism (default 8)");
  app.add_option("--zero-stage", f->zero_stage, "0, 1 or 2 (default: train.zero_stage, else 2)");
  app.add_option("--micro-batch", f->micro_batch, "sequences per forward pass per rank");
  app.add_option("--grad-accum", f->grad_accum, "micro-batches per step");
  app.add_option("--seq", f->seq, "tokens per sequence");
  app.add_option("--precision", f->precision, "bf16, fp32 or fp64");
  app.add_option("--activation-checkpointing", f->checkpointing, "true/false");
  app.add_flag("--no-flash", f->no_flash, "attention without FlashAttention (keeps the s² scores)");
  app.add_option("--sources", f->sources, "fused sources (default: the config's, when it has a fusion section)");
  app.add_option("--gpu", f->gpu, "a100-40gb (default), a100-80gb, h100-80gb, h200");
  app.add_option("--device-gib", f->device_gib, "usable device memory in GiB (overrides --gpu's)");
  app.add_option("--peak-tflops", f->peak_tflops, "peak dense bf16 TFLOP/s per device (overrides --gpu's)");
  app.add_option("--reserve-gib", f->reserve_gib,
                 "memory of the runtime itself (default 1: CUDA context, allocator; on a CPU the RSS of a fusellm "
                 "process training a tiny model)");
  app.add_option("--mfu", f->mfu, "model FLOPs utilization for the time estimate (default 0.4)");
  app.add_option("--tokens", f->tokens, "training tokens, for wall time and the store size (e.g. 1.8e9)");
  return [f] { return run(*f); };
}

}  // namespace

FUSELLM_COMMAND(plan, "Per-rank memory, fit and throughput of a training setup, before launching it", setup);
