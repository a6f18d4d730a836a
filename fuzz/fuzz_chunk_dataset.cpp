// A chunk dataset (what `fusellm prepare` writes): manifest.json and its JSONL shards, opened without
// checksums (structure is always checked) and read chunk by chunk.
// Bundle: `#@ manifest.json`, `#@ chunks-00000.jsonl`, ...
#include "fuzz_support.hpp"
#include "fusellm/data/chunk_dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "manifest.json");
  fuzz::expect_clean_errors("fuzz_chunk_dataset", [&] {
    const data::ChunkDataset dataset = data::ChunkDataset::open(dir, /*verify_checksums=*/(size & 1) == 0);
    for (const data::Chunk& chunk : dataset) (void)chunk;
  });
  return 0;
}
