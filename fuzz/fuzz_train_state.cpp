// A training checkpoint's trainer state (manifest and file table, optimizer tensors, loader position, RNG,
// ZeRO shard table and shards) and the output directory's `latest` pointer, read as `fusellm train
// --resume` does: load the state, then read every parameter's saved master weights and moments (whole,
// and the upper half as a ZeRO rank with a later slice would).
// The bundle is a training output directory: `#@ checkpoints/latest`, `#@ checkpoints/step-00000002/model.safetensors`,
// `#@ checkpoints/step-00000002/trainer_state/state.json`, ...
#include "fuzz_support.hpp"
#include "fusellm/io/checkpoint.hpp"
#include "fusellm/train/checkpoint.hpp"
#include "fusellm/train/sharded_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "checkpoints/latest");
  fuzz::expect_clean_errors("fuzz_train_state", [&] {
    const auto latest = train::latest_checkpoint(dir);
    if (!latest) return;
    const train::TrainState state = train::load_train_state(*latest);
    for (const auto& [name, tensor] : state.optimizer) (void)tensor.numel();
    const auto saved = train::open_optimizer_state(*latest, state);
    const auto weights = io::open_checkpoint(*latest);
    for (const std::string& name : weights->names()) {
      int64_t numel = 1;
      for (int64_t d : weights->shape(name)) numel *= d;
      if (numel > (int64_t(1) << 22)) continue;  // the seeds' tensors are far smaller; a claim this large is the reader's to refuse
      for (const char* kind : {"master", "exp_avg", "exp_avg_sq"}) {
        (void)saved->read(kind, name, 0, numel).sum();
        (void)saved->read(kind, name, numel / 2, numel - numel / 2).numel();
      }
    }
  });
  return 0;
}
