#pragma once
// The training loop: λ·CLM + (1−λ)·fusion on the target model, AdamW, schedule with warmup, gradient
// accumulation and clipping, metrics, checkpoints and exact resume. One process or many (data parallel:
// each rank takes its slice of the global batch and gradients are averaged through a GradientReducer).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/batch_source.hpp"
#include "fusellm/train/optimizer.hpp"
#include "fusellm/train/train_config.hpp"

namespace fusellm::train {

class Collectives;
class ZeroOptimizer;

struct LossParts {
  at::Tensor total;   // what backward runs on
  double clm = 0, fusion = 0;
};

// Computes the loss of a micro-batch from the target's final hidden states [B, T, H]
// (model.logits_from_hidden maps them to logits, chunked if it wants).
using LossFn = std::function<LossParts(model::CausalLM& model, const at::Tensor& hidden, const TrainBatch& batch)>;

// Mean next-token cross-entropy over labels != -100, labels shifted by one inside.
at::Tensor clm_loss(model::CausalLM& model, const at::Tensor& hidden, const TrainBatch& batch);
// CLM alone as a LossFn (training without sources; the fusion loss is make_fusion_loss in aligned_source.hpp).
LossFn make_clm_loss();

// Averages gradients over processes; absent for one process.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual void average(const std::vector<at::Tensor>& grads) = 0;  // in place
  // A step's gradients: begin_last_backward right before the backward of the step's last micro-batch
  // (earlier ones only accumulate), finish after it; when finish returns, the parameters' gradients hold
  // the averages. A reducer may start all-reducing gradients in between, as backward makes them final.
  // The default averages everything in finish.
  virtual void begin_last_backward(const std::vector<at::Tensor>& params) {}
  virtual void finish(const std::vector<at::Tensor>& params) {
    std::vector<at::Tensor> grads;
    for (const auto& p : params)
      if (p.grad().defined()) grads.push_back(p.grad());
    average(grads);
  }
  // Element-wise sums over ranks in one collective (token counts, metrics).
  virtual std::vector<double> sum(std::vector<double> values) = 0;
  virtual void barrier() = 0;
  // Reduce-scatter and all-gather over the same group, for ZeRO (train/zero.hpp); null when absent.
  virtual std::shared_ptr<Collectives> collectives() const { return nullptr; }
};

struct StepMetrics {
  int64_t step;
  double loss, clm, fusion, lr, grad_norm, tokens_per_s;
  double tokens;  // over all ranks
  double tflops = 0;  // model TFLOP/s per device (train/flops.hpp)
  double mfu = -1;    // model FLOPs utilization, −1 when the device's peak is unknown
  // Bytes this rank holds at the end of the step: optimizer state (moments, and master weights where they
  // are a copy), gradients (full, or ZeRO-2's partition), and the process's peak resident set so far.
  int64_t optimizer_bytes = 0, gradient_bytes = 0, comm_peak_bytes = 0, peak_rss_bytes = 0;
};

struct TrainerOptions {
  TrainConfig config;
  fs::path model_dir;               // the target (config.json and tokenizer files are copied from it)
  bool resume = false;
  std::shared_ptr<GradientReducer> reducer;  // null = one process
  bool quiet = false;               // no progress bar (tests)
};

class Trainer {
 public:
  ~Trainer();
  Trainer(TrainerOptions options, std::unique_ptr<model::CausalLM> model, std::unique_ptr<TrainBatchSource> source,
          LossFn loss);
  // Runs to the end (or from the latest checkpoint with resume); returns the metrics of every step run.
  std::vector<StepMetrics> run();
  model::CausalLM& model() { return *model_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  StepMetrics train_step(int64_t step);
  void save(int64_t step);
  void restore();
  TrainerOptions opt_;
  std::unique_ptr<model::CausalLM> model_;
  std::unique_ptr<TrainBatchSource> source_;
  LossFn loss_;
  std::unique_ptr<AdamW> optimizer_;     // ZeRO-0
  std::unique_ptr<ZeroOptimizer> zero_;  // ZeRO-1/2
  std::vector<at::Tensor> params_;
  int64_t total_steps_ = 0, start_step_ = 0;
  double flops_per_token_ = 0;        // for MFU
  std::optional<double> peak_flops_;  // per device; nullopt = unknown
};

// Checks what cannot fit before any work (max_length beyond the model's context, too few sequences for
// one global batch); throws Error naming the key.
void check_fits(const TrainConfig& cfg, const model::ModelConfig& model_cfg, int64_t num_sequences,
                int world_size, const std::string& source);

}  // namespace fusellm::train
