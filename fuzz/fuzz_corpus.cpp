// Corpus files as `fusellm prepare` reads them. The first byte picks the file kind (JSONL, JSONL.gz,
// JSONL.zst, Parquet, or text in one of the four txt modes) and the bad-line policy; the rest is the file.
#include "fuzz_support.hpp"
#include "fusellm/data/corpus.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fusellm;
  fuzz::init_quiet_logging();
  if (size == 0) return 0;
  static const char* const kNames[] = {"corpus.jsonl", "corpus.jsonl.gz", "corpus.jsonl.zst", "corpus.parquet",
                                       "corpus.txt",   "corpus.txt",      "corpus.txt",       "corpus.txt"};
  static const TxtMode kModes[] = {TxtMode::Paragraph, TxtMode::Paragraph, TxtMode::Paragraph, TxtMode::Paragraph,
                                   TxtMode::Document,  TxtMode::Line,      TxtMode::Paragraph, TxtMode::Separator};
  const unsigned kind = data[0] & 7;
  const fs::path dir = fuzz::fresh_scratch();
  const fs::path file = dir / kNames[kind];
  fuzz::write_bytes(file, {reinterpret_cast<const char*>(data) + 1, size - 1});
  data::CorpusOptions options;
  options.txt_mode = kModes[kind];
  options.on_bad_line = (data[0] & 8) ? BadLinePolicy::Skip : BadLinePolicy::Fail;
  fuzz::expect_clean_errors("fuzz_corpus", [&] {
    data::CorpusReader reader({file.string()}, options);
    data::Document doc;
    while (reader.next(doc)) {
    }
    (void)reader.stats().summary();
  });
  return 0;
}
