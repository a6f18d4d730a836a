// safetensors checkpoints: one file (header + tensor table + data), or an index with shards. Drives
// io::open_checkpoint as load_model does, then reads every tensor's shape and data.
#include "fuzz_support.hpp"
#include "fusellm/io/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "model.safetensors");
  fuzz::expect_clean_errors("fuzz_safetensors", [&] {
    auto reader = io::open_checkpoint(dir);
    for (const std::string& name : reader->names()) {
      (void)reader->shape(name);
      (void)reader->load(name, {}).sum();
    }
  });
  return 0;
}
