#pragma once
// The collectives sharded data parallelism (ZeRO) needs, behind one interface for every backend:
// sum all-reduce, reduce-scatter and all-gather over flat 1-D tensors of world × chunk elements.
// NCCL has all three natively. LibTorch 1.13's Gloo has none of reduce_scatter, _reduce_scatter_base,
// _allgather_base or bfloat16 (../shared/docs/zero-notes.md §3, checked against Debian's binary), so on
// Gloo they are emulated with calls it does have:
//   reduce-scatter: one `reduce` to each owner of a chunk (DeepSpeed ZeRO-2's decomposition), or an
//                   all-reduce of the whole buffer keeping this rank's chunk (what 2.x's Gloo fallback does);
//   all-gather:     the list form into views of the output, bfloat16 moved bit for bit as float16.
// Reductions always run in the master dtype (float32 or float64), never bfloat16.
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fusellm/util/torch_pch.hpp"

namespace c10d {
class ProcessGroupGloo;
class ProcessGroupNCCL;
}

namespace fusellm::train {

// A collective in flight. wait() blocks until it is done, rethrows its failure, then runs the step that
// completes it (copying a slice out, say); calling wait() again does nothing.
class PendingCollective {
 public:
  // Turns a backend's failure (a c10::Error from Gloo or NCCL) into the fusellm::Error it throws.
  using Explain = std::function<void(const std::exception&)>;

  PendingCollective() = default;
  PendingCollective(std::vector<c10::intrusive_ptr<c10d::Work>> works, std::function<void()> then,
                    std::vector<at::Tensor> keep_alive = {});
  void wait();
  bool done() const { return works_.empty() && !then_; }
  // wait() passes a backend failure to `explain` (which throws) instead of rethrowing it as it is.
  void explain_failures(Explain explain) { explain_ = std::move(explain); }

 private:
  std::vector<c10::intrusive_ptr<c10d::Work>> works_;
  std::function<void()> then_;
  std::vector<at::Tensor> keep_alive_;  // buffers the backend reads or writes until it is done
  Explain explain_;
};

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string describe() const = 0;  // "gloo (reduce-scatter: reduce per owner)", "nccl", …
  // Sum over ranks, in place.
  virtual PendingCollective all_reduce_sum(at::Tensor tensor) = 0;
  // input [world × chunk] (overwritten), output [chunk] = the sum over ranks of input's chunk `rank`.
  virtual PendingCollective reduce_scatter_sum(at::Tensor input, at::Tensor output) = 0;
  // output [world × chunk] = every rank's `chunk`, in rank order.
  virtual PendingCollective all_gather(at::Tensor chunk, at::Tensor output) = 0;
};

// How Gloo emulates reduce-scatter (train.reduce_scatter): "reduce" sends each chunk only to its owner
// (N reduces, the bytes of a real reduce-scatter); "allreduce" sums everything everywhere and keeps a slice.
enum class ReduceScatterEmulation { ReducePerOwner, AllReduceSlice };
ReduceScatterEmulation parse_reduce_scatter_emulation(const std::string& name, const std::string& key);

// One process: every collective is the identity (reduce-scatter of world 1 copies).
std::shared_ptr<Collectives> make_single_process_collectives();
std::shared_ptr<Collectives> make_gloo_collectives(c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank,
                                                   int world_size, ReduceScatterEmulation emulation);
// NCCL's own reduce-scatter and all-gather (_reduce_scatter_base, _allgather_base). Defined only in builds
// with an NCCL process group (train/nccl_group.hpp).
std::shared_ptr<Collectives> make_nccl_collectives(c10::intrusive_ptr<c10d::ProcessGroupNCCL> group, int rank,
                                                   int world_size);

}  // namespace fusellm::train
