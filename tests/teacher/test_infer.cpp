// infer_logit_store on the real stories260K model over chunks cut from real text: the stored top-k and
// next-token log-probs against the model's full log_softmax computed here chunk by chunk (no batching, no
// padding), resume, ranks, and the errors for mismatched or missing inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <set>

#include "common/error_of.hpp"
#include "common/test_paths.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/teacher/infer.hpp"
#include "fusellm/util/error.hpp"
#include "infer_test_util.hpp"

namespace fusellm::teacher {
namespace {

using test::make_chunk_dataset;
using test::scratch_dir;
using test::stories_model_dir;
using test::write_small_corpus;

// What the model and tokenizer cost to load once per test binary.
struct Stories {
  std::unique_ptr<model::CausalLM> model;
  std::unique_ptr<tok::Tokenizer> tokenizer;
};
Stories& stories() {
  static Stories s = [] {
    Stories s;
    io::LoadOptions load;
    load.dtype = at::kFloat;
    s.model = model::load_model(stories_model_dir(), load);
    s.tokenizer = tok::load_tokenizer(stories_model_dir());
    return s;
  }();
  return s;
}

InferSettings small_settings() {
  InferSettings s;
  s.top_k = 10;
  s.batch_tokens = 160;  // several rows of different lengths per batch: padding and masks are exercised
  s.add_bos = false;     // the paper's recipe: no BOS, EOS appended
  s.add_eos = true;
  s.shard_records = 4;
  s.progress = false;
  s.merge_timeout_seconds = 5;
  return s;
}

RankInfo rank_of(int rank, int world) {
  RankInfo r;
  r.rank = rank;
  r.world_size = world;
  return r;
}

// |a - b| within fp16 rounding of b (relative 2^-11) plus fp32 noise between batched and unbatched runs.
bool close_f16(double stored, double reference) {
  return std::abs(stored - reference) <= 2e-4 + std::ldexp(std::abs(reference), -11);
}

TEST(InferBatching, PlanLengthBatchesRespectsTheBudgetAndCoversEveryRow) {
  std::mt19937 rng(7);
  for (int64_t budget : {1, 50, 300, 4096}) {
    std::vector<size_t> lengths(97);
    for (auto& n : lengths) n = 1 + rng() % 120;
    const auto batches = plan_length_batches(lengths, budget);
    std::multiset<size_t> seen;
    size_t previous_longest = SIZE_MAX;
    for (const auto& batch : batches) {
      ASSERT_FALSE(batch.empty());
      size_t longest = 0;
      for (size_t i : batch) longest = std::max(longest, lengths[i]), seen.insert(i);
      EXPECT_EQ(longest, lengths[batch.front()]) << "first row is the longest";
      EXPECT_LE(longest, previous_longest) << "batches in non-increasing length";
      previous_longest = longest;
      if (batch.size() > 1) EXPECT_LE(batch.size() * longest, static_cast<size_t>(budget));
    }
    EXPECT_EQ(seen.size(), lengths.size());
    EXPECT_EQ(std::set<size_t>(seen.begin(), seen.end()).size(), lengths.size()) << "every row exactly once";
    if (budget >= 4096) EXPECT_LE(batches.size(), 4u) << "a large budget packs many rows";
  }
}

TEST(Infer, StoredTopKAndNextTokenLogprobsEqualTheModelsFullLogSoftmax) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = scratch_dir("infer_topk");
  Stories& s = stories();
  make_chunk_dataset(dir / "chunks", write_small_corpus(dir), *s.tokenizer, 48, false, true);
  const auto dataset = data::ChunkDataset::open(dir / "chunks");
  ASSERT_GE(dataset.size(), 12u);
  const InferSettings settings = small_settings();
  const InferResult result = infer_logit_store(*s.model, *s.tokenizer, dataset, "stories", stories_model_dir(),
                                               dir / "store", settings, rank_of(0, 1));
  EXPECT_TRUE(result.merged);
  EXPECT_EQ(result.chunks, dataset.size());

  const LogitStoreReader store(dir / "store");
  ASSERT_EQ(store.num_records(), dataset.size());
  EXPECT_EQ(store.info().k, 10u);
  EXPECT_FALSE(store.info().add_bos);
  EXPECT_TRUE(store.info().add_eos);
  EXPECT_EQ(store.info().chunk_dataset_hash, dataset.hash());
  EXPECT_EQ(store.info().tokenizer_hash, s.tokenizer->hash());

  at::NoGradGuard no_grad;
  const int32_t eos = *s.tokenizer->special_tokens().eos;
  size_t positions = 0, exact_rows = 0;
  for (uint64_t id = 0; id < dataset.size(); ++id) {
    // The ids infer must have fed: text alone, then EOS.
    std::vector<int32_t> ids = s.tokenizer->encode_ids(dataset.at(id).text, false);
    ids.push_back(eos);
    const RecordView rec = store.record(id);
    ASSERT_EQ(rec.num_positions(), ids.size()) << "chunk " << id;
    for (size_t t = 0; t < ids.size(); ++t) ASSERT_EQ(rec.input_id(t), ids[t]) << "chunk " << id << " pos " << t;

    // Reference: this chunk alone, full vocabulary, fp32 log_softmax and torch::topk; double for scoring
    // (what `fusellm score` computes).
    model::ForwardArgs args;
    args.input_ids = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong).reshape({1, -1});
    const at::Tensor logits = s.model->forward(args)[0];
    const at::Tensor lp32 = at::log_softmax(logits, -1);
    const at::Tensor lp64 = at::log_softmax(logits.to(at::kDouble), -1);
    auto [ref_values, ref_ids] = lp32.topk(10, -1, true, true);
    auto lp32_a = lp32.accessor<float, 2>();
    auto lp64_a = lp64.accessor<double, 2>();
    auto vals_a = ref_values.accessor<float, 2>();
    auto ids_a = ref_ids.accessor<int64_t, 2>();
    double nll = 0;
    for (uint32_t t = 0; t < rec.num_positions(); ++t, ++positions) {
      bool exact = true;
      std::set<int32_t> distinct;
      for (uint32_t i = 0; i < 10; ++i) {
        const int32_t sid = rec.topk_id(t, i);
        const float slp = rec.topk_logprob(t, i);
        distinct.insert(sid);
        // The stored value is that id's log-prob, and it belongs to the top 10.
        ASSERT_TRUE(close_f16(slp, lp32_a[t][sid])) << "chunk " << id << " pos " << t << " rank " << i << ": id "
                                                     << sid << " stored " << slp << " model " << lp32_a[t][sid];
        ASSERT_TRUE(slp >= vals_a[t][9] || close_f16(slp, vals_a[t][9]))
            << "chunk " << id << " pos " << t << ": id " << sid << " (" << slp << ") not in top 10";
        if (i > 0) ASSERT_LE(slp, rec.topk_logprob(t, i - 1)) << "rows sorted by log-prob";
        if (sid != ids_a[t][i]) exact = false;
      }
      ASSERT_EQ(distinct.size(), 10u);
      exact_rows += exact;
      if (t + 1 < rec.num_positions()) {
        const double ref = lp64_a[t][ids[t + 1]];
        ASSERT_TRUE(close_f16(rec.next_token_logprob(t), ref))
            << "chunk " << id << " pos " << t << ": next-token log-prob " << rec.next_token_logprob(t) << " vs " << ref;
        nll -= ref;
      } else {
        EXPECT_TRUE(std::isnan(rec.next_token_logprob(t)));
      }
    }
    const double mean_ce = rec.num_positions() > 1 ? nll / (rec.num_positions() - 1) : 0.0;
    EXPECT_NEAR(rec.mean_ce(), mean_ce, 1e-4) << "chunk " << id;
  }
  EXPECT_GE(double(exact_rows), 0.98 * double(positions)) << "top-k order equals torch::topk except at near-ties";
  const StoreStats stats = compute_store_stats(store);
  EXPECT_GT(stats.mean_topk_mass, 0.5);
  EXPECT_LE(stats.mean_topk_mass, 1.0 + 1e-3);
}

TEST(Infer, AutoBosFollowsTheTokenizerConfigAndChunksThatDoNotFitAreAnError) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = scratch_dir("infer_bos");
  Stories& s = stories();
  // Cut for BOS + EOS: with auto BOS (stories260K's add_bos_token is true) every chunk fits.
  make_chunk_dataset(dir / "chunks", write_small_corpus(dir, 200), *s.tokenizer, 40, true, true);
  const auto dataset = data::ChunkDataset::open(dir / "chunks");
  InferSettings settings = small_settings();
  settings.add_bos.reset();
  infer_logit_store(*s.model, *s.tokenizer, dataset, "stories", stories_model_dir(), dir / "store", settings,
                    rank_of(0, 1));
  const LogitStoreReader store(dir / "store");
  EXPECT_TRUE(store.info().add_bos);
  for (const RecordView rec : store) {
    EXPECT_EQ(rec.input_id(0), *s.tokenizer->special_tokens().bos);
    EXPECT_LE(rec.num_positions(), 40u);
  }

  // Cut without room for specials at max_length 40: some chunk needs 41 or 42 tokens with them.
  make_chunk_dataset(dir / "tight", write_small_corpus(dir, 200), *s.tokenizer, 40, false, false);
  const auto tight = data::ChunkDataset::open(dir / "tight");
  try {
    infer_logit_store(*s.model, *s.tokenizer, tight, "stories", stories_model_dir(), dir / "store2", settings,
                      rank_of(0, 1));
    FAIL() << "a chunk over max_length was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("over the dataset's max_length 40"), std::string::npos) << e.what();
  }
}

TEST(Infer, ResumeRedoesOnlyMissingShardsAndGivesIdenticalBytes) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = scratch_dir("infer_resume");
  Stories& s = stories();
  make_chunk_dataset(dir / "chunks", write_small_corpus(dir, 600), *s.tokenizer, 48, false, true);
  const auto dataset = data::ChunkDataset::open(dir / "chunks");
  const InferSettings settings = small_settings();
  auto run = [&] {
    return infer_logit_store(*s.model, *s.tokenizer, dataset, "stories", stories_model_dir(), dir / "store",
                             settings, rank_of(0, 1));
  };
  const InferResult first = run();
  const auto files = test::files_of(dir / "store");
  ASSERT_GE(first.shards_written, 3u);

  const InferResult again = run();  // finished: nothing runs, nothing changes
  EXPECT_TRUE(again.already_complete);
  EXPECT_EQ(test::files_of(dir / "store"), files);

  fs::remove(dir / "store" / LogitStoreWriter::shard_file_name(1));  // lost shard
  { std::ofstream(dir / "store" / LogitStoreWriter::shard_file_name(2), std::ios::binary | std::ios::app) << "x"; }
  const InferResult resumed = run();
  EXPECT_FALSE(resumed.already_complete);
  EXPECT_EQ(resumed.shards_written, 2u);
  EXPECT_EQ(resumed.shards_resumed, first.shards_written - 2);
  EXPECT_EQ(test::files_of(dir / "store"), files) << "a resumed store is byte-identical";
}

TEST(Infer, TwoRanksWriteTheSameRecordsAsOne) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = scratch_dir("infer_ranks");
  Stories& s = stories();
  make_chunk_dataset(dir / "chunks", write_small_corpus(dir, 600), *s.tokenizer, 48, false, true);
  const auto dataset = data::ChunkDataset::open(dir / "chunks");
  const InferSettings settings = small_settings();
  auto run = [&](const fs::path& store, int rank, int world) {
    return infer_logit_store(*s.model, *s.tokenizer, dataset, "stories", stories_model_dir(), store, settings,
                             rank_of(rank, world));
  };
  run(dir / "one", 0, 1);
  // Rank 0 alone waits for rank 1's part file, then gives up with a clear message.
  InferSettings impatient = settings;
  impatient.merge_timeout_seconds = 0.3;
  try {
    infer_logit_store(*s.model, *s.tokenizer, dataset, "stories", stories_model_dir(), dir / "two", impatient,
                      rank_of(0, 2));
    FAIL() << "rank 0 merged without rank 1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 of 2 did not finish"), std::string::npos) << e.what();
  }
  const InferResult r1 = run(dir / "two", 1, 2);
  EXPECT_FALSE(r1.merged);
  const InferResult r0 = run(dir / "two", 0, 2);  // its shards are already committed: resumes, then merges
  EXPECT_TRUE(r0.merged);
  EXPECT_EQ(r0.shards_written, 0u);

  const LogitStoreReader one(dir / "one"), two(dir / "two");
  EXPECT_EQ(two.world_size(), 2u);
  ASSERT_EQ(one.num_records(), two.num_records());
  const size_t idb = one.info().id_dtype() == IdDtype::U16 ? 2 : 4;
  for (size_t i = 0; i < one.num_records(); ++i) {
    const RecordView a = one.record_at(i), b = two.record_at(i);
    ASSERT_EQ(a.chunk_id(), b.chunk_id());
    const size_t T = a.num_positions(), k = a.k();
    ASSERT_EQ(T, b.num_positions());
    EXPECT_EQ(a.mean_ce(), b.mean_ce());
    EXPECT_EQ(0, std::memcmp(a.raw_input_ids(), b.raw_input_ids(), T * idb));
    EXPECT_EQ(0, std::memcmp(a.raw_topk_ids(), b.raw_topk_ids(), T * k * idb));
    EXPECT_EQ(0, std::memcmp(a.raw_next_token_logprobs(), b.raw_next_token_logprobs(), T * 2));
    EXPECT_EQ(0, std::memcmp(a.raw_topk_logprobs(), b.raw_topk_logprobs(), T * k * 2));
  }
  // Shard j of either store holds the same chunks: the shard files are byte-identical too.
  for (const ShardEntry& shard : one.shards())
    EXPECT_EQ(test::bytes_of(dir / "one" / shard.file), test::bytes_of(dir / "two" / shard.file)) << shard.file;
}

using test::error_of;

TEST(Infer, StoreOfAnotherTokenizerOrChunkDatasetIsAClearError) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = scratch_dir("infer_mismatch");
  Stories& s = stories();
  const fs::path corpus = write_small_corpus(dir, 200);
  make_chunk_dataset(dir / "chunks", corpus, *s.tokenizer, 48, false, true);
  const auto dataset = data::ChunkDataset::open(dir / "chunks");
  const InferSettings settings = small_settings();
  infer_logit_store(*s.model, *s.tokenizer, dataset, "stories", stories_model_dir(), dir / "store", settings,
                    rank_of(0, 1));

  // Another tokenizer: the same model with an edited tokenizer_config.json (so another tokenizer hash).
  const fs::path other_model = dir / "model_b";
  fs::create_directories(other_model);
  for (const auto& e : fs::directory_iterator(stories_model_dir())) fs::copy_file(e.path(), other_model / e.path().filename());
  fs::permissions(other_model / "tokenizer_config.json", fs::perms::owner_write, fs::perm_options::add);
  { std::ofstream(other_model / "tokenizer_config.json", std::ios::app) << "\n"; }
  auto other_tokenizer = tok::load_tokenizer(other_model);
  ASSERT_NE(other_tokenizer->hash(), s.tokenizer->hash());
  make_chunk_dataset(dir / "chunks_b", corpus, *other_tokenizer, 48, false, true);
  const auto dataset_b = data::ChunkDataset::open(dir / "chunks_b");
  std::string err = error_of([&] {
    infer_logit_store(*s.model, *other_tokenizer, dataset_b, "stories", other_model, dir / "store", settings,
                      rank_of(0, 1));
  });
  EXPECT_NE(err.find("the logit store was made with another tokenizer"), std::string::npos) << err;
  EXPECT_NE(err.find("store"), std::string::npos) << err;

  // The chunk dataset was cut for another tokenizer than the model's.
  err = error_of([&] {
    infer_logit_store(*s.model, *s.tokenizer, dataset_b, "stories", stories_model_dir(), dir / "store_c", settings,
                      rank_of(0, 1));
  });
  EXPECT_NE(err.find("the chunk dataset was not prepared for model 'stories'"), std::string::npos) << err;

  // Another chunk dataset (other max_length) into the finished store.
  make_chunk_dataset(dir / "chunks_c", corpus, *s.tokenizer, 40, false, true);
  const auto dataset_c = data::ChunkDataset::open(dir / "chunks_c");
  ASSERT_NE(dataset_c.hash(), dataset.hash());
  err = error_of([&] {
    infer_logit_store(*s.model, *s.tokenizer, dataset_c, "stories", stories_model_dir(), dir / "store", settings,
                      rank_of(0, 1));
  });
  EXPECT_NE(err.find("was made from another chunk dataset"), std::string::npos) << err;
  EXPECT_NE(err.find(dataset.hash()), std::string::npos) << "names the stored hash: " << err;
  // Nothing was touched by the refused runs.
  EXPECT_NO_THROW(LogitStoreReader(dir / "store", StoreExpectations{s.tokenizer->hash(), dataset.hash(), 10}));
}

TEST(Infer, MissingOrUnfinishedChunkDatasetIsAClearError) {
  const fs::path dir = scratch_dir("infer_missing");
  { std::ofstream(dir / "corpus.txt") << "Some text.\n"; }
  const json doc = {{"models", json::array({{{"name", "m"}, {"path", "model"}, {"role", "target"}}})},
                    {"data", {{"corpus", "corpus.txt"}, {"chunk_dir", "chunks"}}}};
  const ExperimentConfig config = experiment_config_from_json(doc, (dir / "exp.json").string(), dir);
  std::string err = error_of([&] { open_chunk_dataset_for_infer(config); });
  EXPECT_NE(err.find("no chunk dataset"), std::string::npos) << err;
  EXPECT_NE(err.find("fusellm prepare"), std::string::npos) << err;
  fs::create_directories(dir / "chunks");
  err = error_of([&] { open_chunk_dataset_for_infer(config); });
  EXPECT_NE(err.find("unfinished chunk dataset"), std::string::npos) << err;
}

}  // namespace
}  // namespace fusellm::teacher
