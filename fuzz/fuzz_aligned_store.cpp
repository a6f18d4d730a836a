// An aligned store (what `fusellm align` writes): its manifest, one logit store per source over the target
// vocabulary and the per-shard side files, opened as the trainer opens it; every record is read.
// Bundle: `#@ manifest.json`, `#@ <source>/manifest.json`, `#@ <source>/shard-00000.bin`, ...
#include "fuzz_support.hpp"
#include "fusellm/align/aligned_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "manifest.json");
  fuzz::expect_clean_errors("fuzz_aligned_store", [&] {
    align::AlignedStoreReader reader(dir, std::nullopt, /*verify_checksums=*/(size & 1) == 0);
    // Every source's records, by the chunk ids its own logit store holds.
    for (size_t s = 0; s < reader.num_sources(); ++s) {
      const fs::path source_dir = align::aligned_source_dir(dir, reader.manifest().sources[s].name);
      teacher::ReaderOptions options;
      options.verify_checksums = false;
      for (teacher::RecordView record : teacher::LogitStoreReader(source_dir, {}, options)) {
        const align::AlignedRecordView view = reader.record(s, record.chunk_id());
        for (uint32_t t = 0; t < view.record.num_positions(); ++t) (void)view.position_ce(t);
      }
    }
  });
  return 0;
}
