// A training checkpoint's trainer state (manifest, optimizer tensors, loader position, RNG, ZeRO shard
// table) and the output directory's `latest` pointer, read as `fusellm train --resume` does.
// Bundle: `#@ latest`, `#@ step-00000002/trainer_state/state.json`, ...
#include "fuzz_support.hpp"
#include "fusellm/train/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "latest");
  fuzz::expect_clean_errors("fuzz_train_state", [&] {
    const auto latest = train::latest_checkpoint(dir);
    if (!latest) return;
    const train::TrainState state = train::load_train_state(*latest);
    for (const auto& [name, tensor] : state.optimizer) (void)tensor.numel();
  });
  return 0;
}
