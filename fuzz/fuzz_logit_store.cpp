// A logit store (what `fusellm infer` writes): manifest.json and its shards. Opened without checksums so
// that mutated shards reach the structural checks (record headers, lengths, ids against the vocabulary),
// then every record is decoded. Bundle: `#@ manifest.json`, `#@ shard-00000.bin`, ...
#include "fuzz_support.hpp"
#include "fusellm/teacher/logit_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  const fs::path dir = fuzz::materialize({reinterpret_cast<const char*>(data), size}, "manifest.json");
  fuzz::expect_clean_errors("fuzz_logit_store", [&] {
    teacher::ReaderOptions options;
    options.verify_checksums = (size & 1) == 0;  // half the inputs also take the checksum path
    teacher::LogitStoreReader reader(dir, {}, options);
    std::vector<int32_t> ids;
    std::vector<float> lps;
    for (teacher::RecordView record : reader) {
      ids.resize(size_t(record.num_positions()) * record.k());
      lps.resize(ids.size());
      record.topk_ids(ids.data());
      record.topk_logprobs(lps.data());
      (void)record.to_record();
    }
    (void)teacher::compute_store_stats(reader);
  });
  return 0;
}
