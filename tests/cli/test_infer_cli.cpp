// `fusellm infer` end to end as a child process: SIGKILL at several points and a rerun give a store
// byte-identical to an uninterrupted run; two concurrent ranks give the one-rank records; bad inputs give one
// clear line; `fusellm inspect STORE` reports and dumps what the store holds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "teacher/infer_test_util.hpp"

namespace fusellm {
namespace {

using testing::HasSubstr;

using test::Exit;
using test::spawn_cli;
using test::wait_cli;
const auto run_cli = test::run_cli_env;

// A small chunk dataset (made through the prepare API) and configs pointing at it, one store directory each.
struct Fixture {
  fs::path dir, corpus, chunks;
  std::unique_ptr<tok::Tokenizer> tokenizer;
  uint64_t chunk_count = 0;

  explicit Fixture(const std::string& name) : dir(test::scratch_dir(name)) {
    corpus = test::write_small_corpus(dir, 400);
    chunks = dir / "chunks";
    tokenizer = tok::load_tokenizer(test::stories_model_dir());
    test::make_chunk_dataset(chunks, corpus, *tokenizer, 40, false, true);
    chunk_count = data::ChunkDataset::open(chunks).size();
  }
  std::string config(const std::string& store, const fs::path& chunk_dir = {}) const {
    return test::write_infer_config(dir / (store + ".json"), test::stories_model_dir(), corpus,
                                    chunk_dir.empty() ? chunks : chunk_dir, dir / store, 40, /*shard_records=*/4)
        .string();
  }
  fs::path store(const std::string& name) const { return dir / name / "stories"; }
};

std::vector<std::string> infer_args(const std::string& config) {
  return {"infer", "--config", config, "--model", "stories", "--no-progress", "--merge-timeout", "60"};
}

TEST(CliInfer, KilledAtAnyPointThenRerunGivesAByteIdenticalStore) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("cli_infer_kill");
  ASSERT_GE(fx.chunk_count, 15u);
  const uint64_t shards = (fx.chunk_count + 3) / 4;
  Exit ref = run_cli(infer_args(fx.config("ref")), {}, fx.dir / "ref.log");
  ASSERT_FALSE(ref.killed);
  ASSERT_EQ(ref.code, 0) << ref.output;
  const auto expected = test::files_of(fx.store("ref"));
  ASSERT_TRUE(expected.count("manifest.json"));

  struct Kill {
    std::string name;
    std::vector<std::vector<std::string>> hooks;  // one killed run per entry, then a clean rerun
  };
  const std::vector<Kill> kills = {
      // after two committed shards, then again in the rerun mid-shard (one record into shard 2)
      {"twice", {{"FUSELLM_TEST_KILL_AFTER_SHARDS=2"}, {"FUSELLM_TEST_KILL_AFTER_RECORDS=1"}}},
      {"before_merge", {{"FUSELLM_TEST_KILL_AFTER_SHARDS=" + std::to_string(shards)}}},
  };
  for (const Kill& kill : kills) {
    SCOPED_TRACE(kill.name);
    const std::string config = fx.config(kill.name);
    for (const auto& env : kill.hooks) {
      Exit e = run_cli(infer_args(config), env, fx.dir / (kill.name + ".log"));
      ASSERT_TRUE(e.killed && e.code == SIGKILL) << "the hook did not fire: " << e.output;
    }
    EXPECT_FALSE(fs::exists(fx.store(kill.name) / "manifest.json")) << "a killed run left a finished store";
    Exit e = run_cli(infer_args(config), {}, fx.dir / (kill.name + ".log"));
    ASSERT_EQ(e.code, 0) << e.output;
    EXPECT_EQ(test::files_of(fx.store(kill.name)), expected) << "store differs from the uninterrupted run";
  }
  // Killed from outside after a delay (wherever that lands: start-up, compute, a shard write, the merge).
  for (int delay_ms : {600}) {
    const std::string name = "delay" + std::to_string(delay_ms);
    const std::string config = fx.config(name);
    const pid_t pid = spawn_cli(infer_args(config), {}, fx.dir / (name + ".log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    wait_cli(pid, fx.dir / (name + ".log"));
    Exit e = run_cli(infer_args(config), {}, fx.dir / (name + ".log"));
    ASSERT_EQ(e.code, 0) << e.output;
    EXPECT_EQ(test::files_of(fx.store(name)), expected) << name;
  }
  // A finished store: a rerun changes nothing.
  Exit again = run_cli(infer_args(fx.config("ref")), {}, fx.dir / "again.log");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("already complete"));
  EXPECT_EQ(test::files_of(fx.store("ref")), expected);
}

void check_inspect(const Fixture& fx, const fs::path& store);

TEST(CliInfer, TwoConcurrentRanksGiveTheOneRankRecordsAndInspectReportsThem) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("cli_infer_ranks");
  Exit one = run_cli(infer_args(fx.config("one")), {}, fx.dir / "one.log");
  ASSERT_EQ(one.code, 0) << one.output;
  const std::string config = fx.config("two");
  // Rank 1 starts first, so rank 0 really has to wait for its part file at least sometimes.
  const pid_t r1 = spawn_cli(infer_args(config), {"RANK=1", "WORLD_SIZE=2", "LOCAL_RANK=1"}, fx.dir / "r1.log");
  const pid_t r0 = spawn_cli(infer_args(config), {"RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0"}, fx.dir / "r0.log");
  Exit e0 = wait_cli(r0, fx.dir / "r0.log"), e1 = wait_cli(r1, fx.dir / "r1.log");
  ASSERT_EQ(e0.code, 0) << e0.output;
  ASSERT_EQ(e1.code, 0) << e1.output;
  EXPECT_THAT(e0.output, HasSubstr("manifest merged"));

  const teacher::LogitStoreReader a(fx.store("one")), b(fx.store("two"));
  EXPECT_EQ(b.world_size(), 2u);
  ASSERT_EQ(a.num_records(), fx.chunk_count);
  ASSERT_EQ(b.num_records(), fx.chunk_count);
  for (size_t i = 0; i < a.num_records(); ++i) {
    const teacher::ChunkRecord x = a.record_at(i).to_record(), y = b.record_at(i).to_record();
    ASSERT_EQ(x.chunk_id, y.chunk_id);
    EXPECT_EQ(x.input_ids, y.input_ids);
    EXPECT_EQ(x.topk_ids, y.topk_ids);
    EXPECT_EQ(x.topk_logprobs, y.topk_logprobs);
    EXPECT_EQ(0, std::memcmp(x.next_token_logprob.data(), y.next_token_logprob.data(),
                             x.next_token_logprob.size() * sizeof(float)));  // NaN at the end compares by bits
    EXPECT_EQ(a.record_at(i).mean_ce(), b.record_at(i).mean_ce());
  }
  for (const auto& shard : a.shards())
    EXPECT_EQ(test::bytes_of(fx.store("one") / shard.file), test::bytes_of(fx.store("two") / shard.file));
  check_inspect(fx, fx.store("two"));
}

TEST(CliInfer, BadInputsGiveOneClearLine) {
  FUSELLM_REQUIRE_SHARED();
  Fixture fx("cli_infer_bad");
  // No chunk dataset yet.
  Exit e = run_cli(infer_args(fx.config("s1", fx.dir / "no_chunks")), {}, fx.dir / "e1.log");
  EXPECT_EQ(e.code, 1);
  EXPECT_THAT(e.output, HasSubstr("no chunk dataset"));
  EXPECT_THAT(e.output, HasSubstr("fusellm prepare"));
  EXPECT_THAT(e.output, testing::Not(HasSubstr("Exception raised from")));

  // A finished store, then another chunk dataset into the same store directory.
  ASSERT_EQ(run_cli(infer_args(fx.config("s2")), {}, fx.dir / "ok.log").code, 0);
  test::make_chunk_dataset(fx.dir / "chunks_other", fx.corpus, *fx.tokenizer, 32, false, true);
  e = run_cli(infer_args(fx.config("s2", fx.dir / "chunks_other")), {}, fx.dir / "e2.log");
  EXPECT_EQ(e.code, 1);
  EXPECT_THAT(e.output, HasSubstr("was made from another chunk dataset"));
  EXPECT_THAT(e.output, HasSubstr("remove it or choose another infer.store_dir"));

  e = run_cli({"infer", "--config", fx.config("s3"), "--model", "nope"}, {}, fx.dir / "e3.log");
  EXPECT_EQ(e.code, 1);
  EXPECT_THAT(e.output, HasSubstr("--model nope: no such model"));
}

// `fusellm inspect STORE` on a store made by the CLI.
void check_inspect(const Fixture& fx, const fs::path& store) {
  const auto dataset = data::ChunkDataset::open(fx.chunks);
  const int32_t eos = *fx.tokenizer->special_tokens().eos;
  uint64_t tokens = 0;
  for (uint64_t id = 0; id < dataset.size(); ++id) tokens += fx.tokenizer->encode_ids(dataset.at(id).text, false).size() + 1;

  Exit e = run_cli({"inspect", store.string(), "--json"}, {}, fx.dir / "inspect.log");
  ASSERT_EQ(e.code, 0) << e.output;
  const json summary = json::parse(e.output.substr(e.output.find('{')));
  EXPECT_EQ(summary["records"], dataset.size());
  EXPECT_EQ(summary["tokens"], tokens);
  EXPECT_EQ(summary["k"], 10);
  EXPECT_NEAR(summary["bytes_per_token"].get<double>(), summary["bytes"].get<double>() / double(tokens), 1e-9);
  // stories260K on children's stories and Shakespeare: a real model's CE is well below uniform (log 512 = 6.2).
  EXPECT_GT(summary["mean_ce"].get<double>(), 0.3);
  EXPECT_LT(summary["mean_ce"].get<double>(), 6.0);
  EXPECT_GT(summary["mean_topk_mass"].get<double>(), 0.5);

  e = run_cli({"inspect", store.string(), "--dump", "3", "--json"}, {}, fx.dir / "dump.log");
  ASSERT_EQ(e.code, 0) << e.output;
  const json rec = json::parse(e.output.substr(e.output.find('{')));
  std::vector<int32_t> ids = fx.tokenizer->encode_ids(dataset.at(3).text, false);
  ids.push_back(eos);
  ASSERT_EQ(rec["tokens"].size(), ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    const json& p = rec["tokens"][t];
    EXPECT_EQ(p["id"], ids[t]);
    EXPECT_EQ(p["token"], fx.tokenizer->id_to_token(ids[t]));
    ASSERT_EQ(p["topk"].size(), 10u);
    for (const json& c : p["topk"]) EXPECT_EQ(c["token"], fx.tokenizer->id_to_token(c["id"].get<int32_t>()));
    EXPECT_EQ(p["next_token_logprob"].is_null(), t + 1 == ids.size());
  }

  e = run_cli({"inspect", store.string()}, {}, fx.dir / "inspect_text.log");
  ASSERT_EQ(e.code, 0) << e.output;
  EXPECT_THAT(e.output, HasSubstr(fmt::format("records      {}", dataset.size())));
  EXPECT_THAT(e.output, HasSubstr("bytes/token"));
  EXPECT_THAT(e.output, HasSubstr("mean CE"));
}

}  // namespace
}  // namespace fusellm
