#pragma once
// ZeRO stages 1 and 2 (Rajbhandari et al., arXiv:1910.02054): data parallelism whose optimizer state
// (stage 1) and gradients (stage 2) are split over the ranks instead of replicated.
//
// Layout. The trainable parameters, in the order backward produces their gradients (reverse declaration
// order; a tied tensor once; frozen ones left out), are grouped into buckets of about bucket_bytes. Each
// bucket is one flat buffer of the parameters' dtype, padded to a multiple of the world size N, and every
// parameter becomes a view into it; rank r owns chunk r of every bucket. Per owned chunk the rank keeps
// the master weights (the chunk of the buffer itself when the parameters are in the master dtype, a
// float32 copy when they are bfloat16), AdamW's two moments and the gradient partition, all in the
// master dtype: 12 or 16 bytes per owned element instead of 12 per parameter.
//
// A step. Stage 2 reduce-scatters every micro-batch's gradients bucket by bucket as backward produces
// them (hooks on the gradient accumulators start a bucket once all its gradients are final; at most
// max_in_flight buckets are in flight, then the oldest is waited for) and drops the full gradients; the
// owned, averaged chunks are summed into the gradient partition. Stage 1 lets micro-batches accumulate
// full gradients and reduce-scatters once, in the last backward. Then: the global gradient norm from
// partial squared norms all-reduced (each element counted once, padding is zero); AdamW on the owned
// chunks; all-gather of every bucket so each rank holds the updated parameters again.
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fusellm/io/safetensors.hpp"
#include "fusellm/train/collectives.hpp"
#include "fusellm/train/grad_hooks.hpp"

namespace fusellm::train {

struct ZeroOptions {
  int stage = 2;                           // 1 or 2
  size_t bucket_bytes = 25u << 20;         // of gradients in the master dtype
  bool overlap = true;                     // start reduce-scatters from gradient hooks during backward
  int max_in_flight = 2;                   // buckets being reduced at once (bounds the transient buffers)
  at::ScalarType master_dtype = at::kFloat;
  at::ScalarType param_dtype = at::kFloat;  // the replicated copy the model computes with (bf16 on CUDA)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

// Bytes this rank holds for the optimizer (master copy when separate, moments), for the gradient
// partition, and the largest amount of transient reduce buffers seen at once.
struct ZeroMemory {
  int64_t optimizer_bytes = 0, gradient_bytes = 0, comm_peak_bytes = 0;
};

// Elements [offset, offset + length) of a parameter flattened, owned by this rank.
struct OwnedSlice {
  std::string name;
  int64_t offset = 0, length = 0;
};

// Reads ranges of saved optimizer state: kind "master", "exp_avg" or "exp_avg_sq" of parameter `name`,
// flattened elements [offset, offset + length), in any dtype (converted by the caller).
class OptimizerStateSource {
 public:
  virtual ~OptimizerStateSource() = default;
  virtual at::Tensor read(const std::string& kind, const std::string& name, int64_t offset, int64_t length) const = 0;
};

class ZeroOptimizer {
 public:
  // Re-points the trainable entries of `params` (the model's tensors) into the flat bucket buffers.
  ZeroOptimizer(io::NamedTensors& params, std::shared_ptr<Collectives> collectives, ZeroOptions options);
  ~ZeroOptimizer();
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  // Around each micro-batch's backward; last = the step's last micro-batch.
  void begin_backward(bool last);
  void end_backward();
  // The global L2 norm of the averaged gradients before clipping; scales them to max_norm (0 = never).
  double clip_grad_norm(double max_norm);
  // AdamW at `lr` on the owned chunks, then all-gathers the parameters and clears the gradients.
  void step(double lr);
  int64_t steps() const { return step_; }

  std::vector<OwnedSlice> owned_slices() const;
  // The owned state per parameter, unpadded: "master.<name>", "exp_avg.<name>", "exp_avg_sq.<name>" (1-D).
  io::NamedTensors state_slices() const;
  // Fills the owned state from `source` (any world size wrote it) and all-gathers the parameters.
  void load_state(const OptimizerStateSource& source, int64_t steps);
  ZeroMemory memory() const;
  int stage() const { return options_.stage; }
  std::string describe() const;

 private:
  struct Param;
  struct Bucket;
  struct InFlight;
  void on_gradient_final(size_t param);
  void launch_ready(bool in_backward);
  void launch(size_t bucket);
  void retire_oldest();
  void gather_all();

  std::shared_ptr<Collectives> coll_;
  ZeroOptions options_;
  int rank_ = 0, world_ = 1;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  GradientFinalHooks hooks_;
  int64_t step_ = 0;

  // State of the backward in progress (hooks run on the autograd engine's thread).
  std::mutex mutex_;
  bool armed_ = false;
  std::vector<char> final_;
  std::vector<size_t> pending_;  // per bucket: gradients not final yet
  size_t next_bucket_ = 0;
  std::deque<InFlight> in_flight_;
  std::exception_ptr error_;
  int64_t comm_bytes_ = 0, comm_peak_ = 0;
  std::vector<char> had_grad_;   // per parameter, over the step's micro-batches on this rank
};

}  // namespace fusellm::train
