// The align driver end to end on small synthetic logit stores over real tokenizations (Llama-2 target,
// GPT-NeoX and tok512 sources): records against the align algorithms called directly, resume after a crash,
// rank split, store/dataset mismatch and config errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/test_paths.hpp"
#include "fusellm/align/align_run.hpp"
#include "fusellm/align/aligned_store.hpp"
#include "fusellm/align/alignment.hpp"
#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/teacher/half_float.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace fusellm::align {
namespace {

const std::vector<std::string> kTexts = {
    "Once upon a time, there was a little girl named Lily.",
    "She liked to play outside\nwith her  dog, Max.",
    "  The sun was shining; they ran to the park!",
    "Tom said: \"Let's build a big castle.\" It was fun.",
    "1234 apples and 56 pears cost $7.89 in total.",
};

struct Model {
  std::string name;
  bool is_target;
  std::unique_ptr<tok::Tokenizer> tokenizer;
  bool add_bos;
  uint32_t k;
};

float round_f16(float v) { return teacher::fp16_to_fp32(teacher::fp32_to_fp16(v)); }

fs::path make_dataset(const fs::path& dir, const std::vector<std::string>& texts, const std::string& tag) {
  data::ChunkDatasetWriter writer(dir, json{{"test", tag}}, 2);
  for (size_t i = 0; i < texts.size(); ++i) writer.add("doc:" + std::to_string(i), 0, 1, texts[i]);
  data::ChunkDatasetTotals totals;
  totals.documents = totals.chunks = texts.size();
  for (const auto& t : texts) totals.text_bytes += t.size();
  writer.finish({}, {}, totals);
  return dir;
}

// Synthetic top-k: the actual next token first at even positions, else pseudo-random ids; log-probs descending.
void make_store(const fs::path& dir, const Model& m, const data::ChunkDataset& ds) {
  teacher::StoreInfo info;
  info.model_name = m.name;
  info.tokenizer_hash = m.tokenizer->hash();
  info.chunk_dataset_hash = ds.hash();
  info.vocab_size = uint32_t(m.tokenizer->vocab_size());
  info.k = m.k;
  info.add_bos = m.add_bos;
  teacher::LogitStoreWriter writer(dir, info, 0, 1, 2);
  for (uint64_t id = 0; id < ds.size(); ++id) {
    if (id % 2 == 0) writer.begin_shard(uint32_t(id / 2));
    teacher::ChunkRecord r;
    r.chunk_id = id;
    if (m.add_bos) r.input_ids.push_back(*m.tokenizer->special_tokens().bos);
    for (int32_t t : m.tokenizer->encode(ds.at(id).text, false).ids) r.input_ids.push_back(t);
    const size_t T = r.input_ids.size();
    uint64_t state = 1469598103934665603ull ^ (id * 7919 + m.k);
    for (size_t t = 0; t < T; ++t) {
      r.next_token_logprob.push_back(-0.25f - float((t * 13 + id) % 9) * 0.4f);
      for (uint32_t i = 0; i < m.k; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        int32_t tid = int32_t((state >> 33) % info.vocab_size);
        if (i == 0 && t % 2 == 0 && t + 1 < T) tid = r.input_ids[t + 1];
        r.topk_ids.push_back(tid);
        r.topk_logprobs.push_back(-0.5f - 0.7f * float(i));
      }
    }
    writer.add(r);
    if (id % 2 == 1 || id + 1 == ds.size()) writer.finish_shard();
  }
  writer.finish();
  teacher::merge_manifests(dir, 1);
}

class AlignRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::shared_dir().empty()) return;
    const fs::path data = test::shared_dir() / "data";
    models_.push_back({"llama2", true, tok::load_tokenizer(data / "tokenizers/llama2/tokenizer.model"), true, 4});
    models_.push_back({"neox", false, tok::load_tokenizer(data / "tokenizers/gpt-neox-20b/20B_tokenizer.json"), false, 4});
    models_.push_back({"tok512", false, tok::load_tokenizer(data / "models/stories260K/tok512.model"), true, 3});
    root_ = test::scratch_dir("align_run");
    make_dataset(root_ / "chunks", kTexts, "main");
    dataset_ = std::make_unique<data::ChunkDataset>(data::ChunkDataset::open(root_ / "chunks"));
    for (const auto& m : models_) make_store(root_ / "store" / m.name, m, *dataset_);
  }
  static void TearDownTestSuite() {
    dataset_.reset();
    models_.clear();
  }

  AlignJob job(const std::string& out, AlignMethod method = AlignMethod::dtw) const {
    AlignJob j;
    j.dataset = dataset_.get();
    for (const auto& m : models_) j.sources.push_back({m.name, m.is_target, root_ / "store" / m.name, m.tokenizer.get()});
    j.settings.method = method;
    j.settings.vocab = VocabMapMethod::exact;
    j.settings.out_dir = root_ / out;
    j.settings.shard_records = 2;
    j.settings.threads = 2;
    j.progress = false;
    return j;
  }

  // Every record of the store against DTW/offsets + Projector called directly.
  void check_against_direct(const fs::path& out, AlignMethod method) const {
    AlignedStoreReader reader(out, dataset_->hash());
    ASSERT_EQ(reader.num_sources(), 3u);
    ASSERT_EQ(reader.num_records(), kTexts.size());
    const Vocabulary target = vocabulary_of(*models_[0].tokenizer);
    teacher::LogitStoreReader target_store(root_ / "store/llama2");
    for (size_t s = 0; s < models_.size(); ++s) {
      const Model& m = models_[s];
      teacher::LogitStoreReader store(root_ / "store" / m.name);
      const Vocabulary source = vocabulary_of(*m.tokenizer);
      ProjectionOptions options;
      options.source_specials = special_ids_of(*m.tokenizer);
      options.target_specials = special_ids_of(*models_[0].tokenizer);
      const VocabMap map = build_vocab_map(source, target, VocabMapMethod::exact, 1);
      const Projector projector(source, target, map, options);
      ProjectionStats total;
      for (uint64_t id = 0; id < kTexts.size(); ++id) {
        const AlignedRecordView got = reader.record(s, id);
        const teacher::ChunkRecord src = store.record(id).to_record();
        const teacher::ChunkRecord tgt = target_store.record(id).to_record();
        const uint32_t T = uint32_t(tgt.input_ids.size()), k = reader.manifest().k;
        ASSERT_EQ(got.record.num_positions(), T);
        EXPECT_FLOAT_EQ(got.chunk_ce, store.record(id).mean_ce());
        for (uint32_t t = 0; t < T; ++t) EXPECT_EQ(got.record.input_id(t), tgt.input_ids[t]);
        if (m.is_target) {
          for (uint32_t t = 0; t < T; ++t)
            for (uint32_t i = 0; i < k; ++i) {
              EXPECT_EQ(got.record.topk_id(t, i), tgt.topk_ids[t * m.k + i]);
              EXPECT_EQ(got.record.topk_logprob(t, i), tgt.topk_logprobs[t * m.k + i]);
            }
          total.positions += T;
          total.one_to_one += T;
          continue;
        }
        TokenAlignment a;
        if (method == AlignMethod::dtw) {
          std::vector<std::string> ts, ss;
          for (int32_t t : tgt.input_ids) ts.push_back(models_[0].tokenizer->id_to_token(t));
          for (int32_t t : src.input_ids) ss.push_back(m.tokenizer->id_to_token(t));
          a = align_dtw(ss, m.tokenizer->space_marker(), ts, models_[0].tokenizer->space_marker());
        } else {
          auto spans = [&](const Model& mm) {
            const auto enc = mm.tokenizer->encode_untrimmed(kTexts[id], false);  // bytes covered, as align does
            std::vector<ByteSpan> out;
            if (mm.add_bos) out.emplace_back(0, 0);
            out.insert(out.end(), enc.offsets.begin(), enc.offsets.end());
            return out;
          };
          a = align_by_offsets(spans(m), spans(models_[0]));
        }
        const ProjectedSequence p = projector.project(tgt.input_ids, src.input_ids, a, src.topk_ids.data(),
                                                      src.topk_logprobs.data(), m.k, &total);
        for (uint32_t t = 0; t < T; ++t) {
          const uint32_t n = p.offsets[t + 1] - p.offsets[t];
          for (uint32_t i = 0; i < k; ++i) {
            if (i < n) {
              EXPECT_EQ(got.record.topk_id(t, i), p.ids[p.offsets[t] + i]) << m.name << " chunk " << id << " t " << t;
              EXPECT_EQ(got.record.topk_logprob(t, i), round_f16(p.logits[p.offsets[t] + i]));
            } else {
              EXPECT_TRUE(got.slot_empty(t, i));
            }
          }
          // Mapped CE: mean of the aligned source positions' CE (those with a next token), else the chunk CE.
          if (t + 1 < T) {
            double sum = 0;
            int count = 0;
            for (int32_t j = a.target_to_source[t].begin; j < a.target_to_source[t].end; ++j)
              if (size_t(j) + 1 < src.input_ids.size()) sum -= src.next_token_logprob[j], ++count;
            const float want = count ? float(sum / count) : store.record(id).mean_ce();
            EXPECT_NEAR(got.position_ce(t), want, 2e-3 * std::max(1.0f, want)) << m.name << " chunk " << id;
          }
        }
      }
      const AlignedSourceStats& stats = reader.manifest().sources[s].stats;
      EXPECT_EQ(stats.chunks, kTexts.size());
      EXPECT_EQ(stats.projection.positions, total.positions) << m.name;
      EXPECT_EQ(stats.projection.one_to_one, total.one_to_one) << m.name;
      if (!m.is_target) {
        EXPECT_EQ(stats.projection.fallback, total.fallback) << m.name;
        EXPECT_GT(stats.projection.one_to_one, 0u);
      }
    }
  }

  static std::map<std::string, std::string> files_of(const fs::path& dir, bool data_only) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = fs::relative(e.path(), dir).string(), name = e.path().filename().string();
      if (data_only && name.rfind("shard-", 0) != 0 && name.rfind("side-", 0) != 0 && rel != "manifest.json") continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      out[rel] = ss.str();
    }
    return out;
  }

  static inline std::vector<Model> models_;
  static inline fs::path root_;
  static inline std::unique_ptr<data::ChunkDataset> dataset_;
};

TEST_F(AlignRunTest, DtwRecordsMatchDirectAlignment) {
  FUSELLM_REQUIRE_SHARED();
  const AlignResult r = run_align(job("dtw"));
  EXPECT_TRUE(r.merged);
  EXPECT_EQ(r.chunks_aligned, kTexts.size() * 3);
  EXPECT_TRUE(is_aligned_store(root_ / "dtw"));
  check_against_direct(root_ / "dtw", AlignMethod::dtw);
  EXPECT_FALSE(fs::is_empty(root_ / "dtw/vocab_maps"));

  // `fusellm inspect` reports the per-source rates (when the CLI is built beside the tests).
  if (!fs::exists(test::cli_path())) GTEST_SKIP() << test::cli_path() << " not built; inspect not checked";
  const fs::path out = root_ / "inspect.json";
  const std::string cmd = test::cli_path() + " inspect --json " + (root_ / "dtw").string() + " > " + out.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const json report = parse_json_file(out);
  const AlignedStoreReader reader(root_ / "dtw");
  ASSERT_EQ(report.at("sources").size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    const auto& want = reader.manifest().sources[s].stats.projection;
    EXPECT_EQ(report["sources"][s]["name"], reader.manifest().sources[s].name);
    EXPECT_DOUBLE_EQ(report["sources"][s]["one_to_one_rate"].get<double>(), want.one_to_one_rate());
    EXPECT_DOUBLE_EQ(report["sources"][s]["fallback_rate"].get<double>(), want.fallback_rate());
  }
  EXPECT_GT(report["sources"][1]["fallback_rate"].get<double>(), 0.0);
}

TEST_F(AlignRunTest, OffsetsRecordsMatchDirectAlignment) {
  FUSELLM_REQUIRE_SHARED();
  run_align(job("offsets", AlignMethod::offsets));
  check_against_direct(root_ / "offsets", AlignMethod::offsets);
}

TEST_F(AlignRunTest, ResumeAfterCrashAndRankSplitGiveIdenticalFiles) {
  FUSELLM_REQUIRE_SHARED();
  run_align(job("ref"));
  const auto reference = files_of(root_ / "ref", false);
  // A crash: the manifest and part files never written, one shard's side file and another's shard lost.
  run_align(job("crash"));
  fs::remove(root_ / "crash/manifest.json");
  for (const char* s : {"llama2", "neox", "tok512"}) fs::remove(root_ / "crash/sources" / s / "part.rank0.json");
  fs::remove(root_ / "crash/sources/neox/side-00001.json");
  fs::remove(root_ / "crash/sources/tok512/shard-00002.bin");
  const AlignResult resumed = run_align(job("crash"));
  EXPECT_EQ(resumed.chunks_aligned, 2u + 1u);  // neox shard 1 (2 chunks), tok512 shard 2 (1 chunk)
  EXPECT_EQ(resumed.shards_skipped, 3u * 3u - 2u);
  EXPECT_EQ(files_of(root_ / "crash", false), reference);

  // Two ranks: rank 1 first (no merge yet), then rank 0 merges; same data files and manifest.
  AlignJob r1 = job("ranks"), r0 = job("ranks");
  r1.world_size = r0.world_size = 2;
  r1.rank = 1;
  EXPECT_FALSE(run_align(r1).merged);
  EXPECT_FALSE(is_aligned_store(root_ / "ranks"));
  EXPECT_TRUE(run_align(r0).merged);
  EXPECT_EQ(files_of(root_ / "ranks", true), files_of(root_ / "ref", true));
}

TEST_F(AlignRunTest, StoreFromAnotherDatasetIsAnErrorNamingTheStore) {
  FUSELLM_REQUIRE_SHARED();
  make_dataset(root_ / "chunks2", {"A different corpus.", "Another text."}, "other");
  const data::ChunkDataset other = data::ChunkDataset::open(root_ / "chunks2");
  AlignJob j = job("mismatch");
  j.dataset = &other;
  try {
    run_align(j);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((root_ / "store/llama2").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("chunk dataset"), std::string::npos) << e.what();
  }
}

// Fuzzing found `at("sources")` escaping as nlohmann's out_of_range from a manifest that lacked the key
// (fuzz/regressions/aligned_store/crash-7fda…): a missing or wrong-typed key is one Error naming the file.
TEST_F(AlignRunTest, ManifestWithMissingOrMistypedKeysIsAnErrorNamingIt) {
  FUSELLM_REQUIRE_SHARED();
  run_align(job("keys"));
  const fs::path manifest = root_ / "keys" / "manifest.json";
  const json good = json::parse(read_file(manifest));
  json missing = good, mistyped = good;
  missing.erase("sources");
  mistyped["sources"] = 374;
  for (const json& doc : {missing, mistyped}) {
    write_file_atomic(manifest, doc.dump());
    try {
      const AlignedStoreReader reader(root_ / "keys");
      ADD_FAILURE() << "no error for " << doc.dump().substr(0, 80);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(manifest.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("sources"), std::string::npos) << e.what();
    }
  }
  write_file_atomic(manifest, good.dump());
  // Fuzzing found a side file naming a chunk its shards do not hold (as many CEs as records, other ids):
  // std::map::at escaped from record(). Now an Error naming the source directory and the chunk.
  const fs::path side = root_ / "keys" / "sources" / "neox" / "side-00000.json";
  json doc = json::parse(read_file(side));
  const uint64_t moved = doc["chunk_ce"][0][0].get<uint64_t>();
  doc["chunk_ce"][0][0] = 999999;
  write_file_atomic(side, doc.dump());
  const AlignedStoreReader reader(root_ / "keys");
  size_t neox = 0;
  while (reader.manifest().sources[neox].name != "neox") ++neox;
  try {
    (void)reader.record(neox, moved);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sources/neox: the side files hold no chunk CE for chunk " + std::to_string(moved)),
              std::string::npos) << e.what();
  }
}

TEST_F(AlignRunTest, ConfigDrivenRunAndCliMatchTheDirectJob) {
  FUSELLM_REQUIRE_SHARED();
  run_align(job("direct"));
  const fs::path data = test::shared_dir() / "data";
  auto config_json = [&](const std::string& out, const std::string& method) {
    return json{{"models", {{{"name", "llama2"}, {"path", (data / "tokenizers/llama2/tokenizer.model").string()},
                             {"role", "target"}},
                            {{"name", "neox"}, {"path", (data / "tokenizers/gpt-neox-20b/20B_tokenizer.json").string()},
                             {"role", "source"}},
                            {{"name", "tok512"}, {"path", (data / "models/stories260K/tok512.model").string()},
                             {"role", "source"}}}},
                {"data", {{"corpus", {"unused.txt"}}, {"chunk_dir", (root_ / "chunks").string()}}},
                {"infer", {{"store_dir", (root_ / "store").string()}}},
                {"align", {{"method", method}, {"vocab", "exact"}, {"out_dir", (root_ / out).string()},
                           {"shard_records", 2}}}};
  };
  const ExperimentConfig config = experiment_config_from_json(config_json("config", "dtw"), "c.json", root_);
  EXPECT_TRUE(align_from_config(config, 0, 1, 2, false).merged);
  EXPECT_EQ(files_of(root_ / "config", true), files_of(root_ / "direct", true));

  if (!fs::exists(test::cli_path())) GTEST_SKIP() << test::cli_path() << " not built; CLI not checked";
  write_file_atomic(root_ / "cli.json", config_json("cli", "dtw").dump());
  const std::string cmd = test::cli_path() + " align --no-progress --config " + (root_ / "cli.json").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(files_of(root_ / "cli", true), files_of(root_ / "direct", true));
  write_file_atomic(root_ / "bad.json", config_json("bad", "viterbi").dump());
  const std::string bad = test::cli_path() + " align --no-progress --config " + (root_ / "bad.json").string() +
                          " > " + (root_ / "bad.log").string() + " 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  EXPECT_NE(read_file(root_ / "bad.log").find("align.method: unknown value 'viterbi'"), std::string::npos)
      << read_file(root_ / "bad.log");
}

TEST(AlignSettings, ParsesAndRejectsUnknownMethodsAndKeys) {
  const AlignSettings d = align_settings_from_json(json(), "c.json", "/cfg", "/cfg/out/store");
  EXPECT_EQ(d.method, AlignMethod::dtw);
  EXPECT_EQ(d.compat, ProjectionMode::fusellm);
  EXPECT_EQ(d.out_dir, fs::path("/cfg/out/aligned"));
  const AlignSettings s = align_settings_from_json(
      json{{"method", "offsets"}, {"compat", "official"}, {"vocab", "exact"}, {"canonicalize", true},
           {"duplicates", "sum"}, {"out_dir", "al"}},
      "c.json", "/cfg", "/cfg/out/store");
  EXPECT_EQ(s.method, AlignMethod::offsets);
  EXPECT_EQ(s.compat, ProjectionMode::official);
  EXPECT_EQ(s.vocab, VocabMapMethod::exact);
  EXPECT_TRUE(s.canonicalize);
  EXPECT_EQ(s.duplicates, DuplicatePolicy::sum);
  EXPECT_EQ(s.out_dir, fs::path("/cfg/al"));
  auto message = [](const json& j) {
    try {
      align_settings_from_json(j, "c.json", "/cfg", "/cfg/out/store");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"method", "viterbi"}}).find("align.method: unknown value 'viterbi'"), std::string::npos);
  EXPECT_NE(message({{"metod", "dtw"}}).find("align.metod: unknown key"), std::string::npos);
  EXPECT_NE(message({{"compat", "x"}}).find("align.compat"), std::string::npos);
}

}  // namespace
}  // namespace fusellm::align
