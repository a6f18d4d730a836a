// prepare_chunk_dataset end to end over real corpus samples with the Llama-2, GPT-NeoX and tok512
// tokenizers: chunks fit every model (special tokens counted), documents come back whole, reruns are
// byte-identical, finished datasets are reused, unfinished ones redone, and other settings need --force.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "fusellm/data/chunk_dataset.hpp"
#include "test_chunk_util.hpp"

namespace fusellm::data {
namespace {

using ::testing::HasSubstr;

// A corpus directory: Shakespeare paragraphs as .txt, and WikiText joined into long JSONL documents
// (plus a whitespace-only record the reader skips).
fs::path make_corpus(const std::string& name) {
  const fs::path dir = test::scratch_dir(name) / "corpus";
  const fs::path corpus = test::shared_dir() / "data" / "corpus";
  std::string txt;
  for (const auto& p : test::paragraphs_of(corpus / "tinyshakespeare.txt", 9000)) txt += p + "\n\n";
  test::write_text_file(dir / "shakespeare.txt", txt);
  std::string jsonl;
  const auto wiki = test::paragraphs_of(corpus / "wikitext-2-test.txt", 12000);
  for (size_t d = 0; d < 3; ++d) {
    std::string doc;
    for (size_t i = d; i < wiki.size(); i += 3) doc += wiki[i] + "\n";
    jsonl += json({{"text", doc}}).dump() + "\n";
    if (d == 1) jsonl += R"({"text": "  \n\t "})" "\n";
  }
  test::write_text_file(dir / "wiki.jsonl", jsonl);
  return dir;
}

PrepareOptions options_for(const fs::path& corpus, const fs::path& out, int64_t max_length, int64_t margin) {
  PrepareOptions o;
  o.corpus = {corpus.string()};
  o.out_dir = out;
  o.max_length = max_length;
  o.margin = margin;
  o.progress = false;
  o.shard_chunks = 40;
  const char* roles[] = {"source", "source", "target"};
  for (size_t i = 0; i < test::real_tokenizers().size(); ++i) {
    const auto& t = test::real_tokenizers()[i];
    PrepareModel m;
    m.tokenizer = t.tokenizer;
    m.info.name = t.name;
    m.info.role = roles[i];
    m.info.tokenizer_path = t.path.string();
    m.info.tokenizer_hash = t.tokenizer->hash();
    m.info.add_bos = t.tokenizer->special_tokens().add_bos;
    m.info.add_eos = true;
    o.models.push_back(m);
  }
  return o;
}

std::string prepare_error(const PrepareOptions& o) {
  try {
    prepare_chunk_dataset(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every file of a dataset directory: name -> bytes.
std::map<std::string, std::string> files_of(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = read_file(e.path());
  return out;
}

TEST(Prepare, ChunksFitEveryModelAndRebuildTheirDocuments) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path corpus = make_corpus("prepare_fit");
  const fs::path out = corpus.parent_path() / "chunks";
  const int64_t max_length = 64, margin = 2;
  const PrepareResult result = prepare_chunk_dataset(options_for(corpus, out, max_length, margin));
  EXPECT_FALSE(result.reused);

  // The corpus read on its own, for comparison.
  const auto docs = read_corpus({corpus.string()}, CorpusOptions{});
  const ChunkDataset ds = ChunkDataset::open(out);
  EXPECT_EQ(ds.hash(), result.manifest.dataset_hash);
  std::map<std::string, std::string> rebuilt;
  std::vector<std::string> order;
  std::map<std::string, uint32_t> parts_seen;
  const auto& tokenizers = test::real_tokenizers();
  for (const Chunk& c : ds) {
    if (!rebuilt.count(c.doc)) order.push_back(c.doc);
    rebuilt[c.doc] += c.text;
    EXPECT_EQ(c.part, parts_seen[c.doc]++) << c.doc;
    for (const auto& t : tokenizers) {
      const int64_t specials = (t.tokenizer->special_tokens().add_bos ? 1 : 0) + 1;
      const auto n = static_cast<int64_t>(t.tokenizer->encode(c.text, false).ids.size());
      EXPECT_LE(n + specials, max_length - margin) << t.name << ", chunk " << c.id;
    }
  }
  ASSERT_EQ(order.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(order[i], docs[i].id);
    EXPECT_EQ(rebuilt[docs[i].id], docs[i].text) << docs[i].id;
    EXPECT_EQ(ds.at(ds.size() - 1).ends_document(), true);
  }
  for (const auto& [doc, n] : parts_seen) {
    (void)doc;
    EXPECT_GE(n, 1u);
  }

  const ChunkManifest& m = ds.manifest();
  EXPECT_EQ(m.totals.documents, docs.size());
  EXPECT_EQ(m.totals.chunks, ds.size());
  EXPECT_GT(ds.size(), 3 * docs.size());  // small max_length: documents are cut many times
  EXPECT_EQ(m.totals.skipped_documents, 1u);  // the whitespace-only record
  EXPECT_EQ(m.models.size(), 3u);
  EXPECT_EQ(m.settings["max_length"], max_length);
  EXPECT_EQ(m.settings["corpus"]["files"].size(), 2u);
  EXPECT_GT(ds.manifest().shards.size(), 1u);
  for (const auto& t : tokenizers) EXPECT_TRUE(m.has_tokenizer(t.tokenizer->hash())) << t.name;
  ASSERT_EQ(result.stats.max_tokens.size(), 3u);
  for (int64_t n : result.stats.max_tokens) EXPECT_LE(n, max_length - margin - 1);
}

TEST(Prepare, RerunsAreIdenticalFinishedDatasetsReusedUnfinishedRedone) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path corpus = make_corpus("prepare_rerun");
  const fs::path a = corpus.parent_path() / "a", b = corpus.parent_path() / "b";
  PrepareOptions oa = options_for(corpus, a, 64, 0), ob = options_for(corpus, b, 64, 0);
  oa.threads = 2;
  ob.threads = 1;
  const auto ra = prepare_chunk_dataset(oa), rb = prepare_chunk_dataset(ob);
  EXPECT_EQ(ra.manifest.dataset_hash, rb.manifest.dataset_hash);
  const auto files_a = files_of(a);
  EXPECT_EQ(files_a, files_of(b));

  const auto again = prepare_chunk_dataset(oa);
  EXPECT_TRUE(again.reused);
  EXPECT_EQ(again.manifest.dataset_hash, ra.manifest.dataset_hash);

  // Interrupted run: shards there, no manifest. Never taken as complete; prepare redoes it.
  fs::remove(a / "manifest.json");
  test::write_text_file(a / "chunks-00099.jsonl", "{\"stale\": true}\n");
  EXPECT_FALSE(ChunkDataset::is_complete(a));
  const auto redone = prepare_chunk_dataset(oa);
  EXPECT_FALSE(redone.reused);
  EXPECT_EQ(redone.manifest.dataset_hash, ra.manifest.dataset_hash);
  EXPECT_EQ(files_of(a), files_a);
}

TEST(Prepare, OtherSettingsNeedForce) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path corpus = make_corpus("prepare_settings");
  const fs::path out = corpus.parent_path() / "chunks";
  const auto first = prepare_chunk_dataset(options_for(corpus, out, 64, 0));

  PrepareOptions longer = options_for(corpus, out, 128, 0);
  const std::string error = prepare_error(longer);
  EXPECT_THAT(error, HasSubstr(out.string()));
  EXPECT_THAT(error, HasSubstr("max_length: 64 vs 128"));
  EXPECT_THAT(error, HasSubstr("--force"));
  EXPECT_EQ(ChunkDataset::open(out).hash(), first.manifest.dataset_hash);  // left alone

  longer.force = true;
  const auto rebuilt = prepare_chunk_dataset(longer);
  EXPECT_FALSE(rebuilt.reused);
  EXPECT_NE(rebuilt.manifest.dataset_hash, first.manifest.dataset_hash);
  EXPECT_LT(rebuilt.manifest.totals.chunks, first.manifest.totals.chunks);

  // A changed corpus file is another setting too.
  const std::string original = read_file(corpus / "shakespeare.txt");
  test::write_text_file(corpus / "shakespeare.txt", "Changed.\n");
  EXPECT_THAT(prepare_error(options_for(corpus, out, 128, 0)), HasSubstr("corpus files"));
  test::write_text_file(corpus / "shakespeare.txt", original);
  EXPECT_TRUE(prepare_chunk_dataset(options_for(corpus, out, 128, 0)).reused);
  // Dropping the model with the only tokenizer of its kind changes the tokenizers.
  PrepareOptions fewer = options_for(corpus, out, 128, 0);
  fewer.models.pop_back();
  EXPECT_THAT(prepare_error(fewer), HasSubstr("tokenizers"));
}

TEST(Prepare, OptionsFromConfigResolveSpecialTokensPerModel) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = test::scratch_dir("prepare_config");
  const json doc = json::parse(R"({
    "models": [{"name": "llama", "path": "m1", "role": "source"}, {"name": "neox", "path": "m2", "role": "target"}],
    "data": {"corpus": "corpus.txt", "max_length": 100, "margin": 3, "chunk_dir": "c"},
    "infer": {"add_eos": false}
  })");
  const ExperimentConfig config = experiment_config_from_json(doc, "test.json", dir);
  const auto& t = test::real_tokenizers();
  const PrepareOptions o = prepare_options_from_config(config, {t[0].tokenizer, t[1].tokenizer});
  EXPECT_EQ(o.out_dir, dir / "c");
  EXPECT_EQ(o.max_length, 100);
  EXPECT_EQ(o.margin, 3);
  ASSERT_EQ(o.models.size(), 2u);
  EXPECT_TRUE(o.models[0].info.add_bos);   // Llama adds BOS ("auto")
  EXPECT_FALSE(o.models[1].info.add_bos);  // GPT-NeoX does not
  EXPECT_FALSE(o.models[0].info.add_eos);
  EXPECT_EQ(o.models[1].info.role, "target");
  EXPECT_EQ(o.models[0].info.tokenizer_hash, t[0].tokenizer->hash());
}

}  // namespace
}  // namespace fusellm::data
