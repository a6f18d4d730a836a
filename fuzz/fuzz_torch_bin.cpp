// pytorch_model.bin: the zip container (local headers, central directory), then data.pkl through the
// unpickler, then the storages. Drives io::load_torch_bin and touches every tensor it returns.
#include "fuzz_support.hpp"
#include "fusellm/io/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "pytorch_model.bin");
  fuzz::expect_clean_errors("fuzz_torch_bin", [&] {
    for (const auto& [name, tensor] : io::load_torch_bin(dir / "pytorch_model.bin"))
      if (tensor.numel() > 0) (void)tensor.to(at::kDouble).sum();
  });
  return 0;
}
