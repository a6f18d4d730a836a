// Resuming after a crash, and multi-rank stores: the directory a resumed run leaves must be byte-identical to
// an uninterrupted run's, and a 2-rank store must hold exactly the records of a 1-rank store.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/test_paths.hpp"
#include "fusellm/teacher/half_float.hpp"
#include "store_test_util.hpp"

namespace fusellm::teacher {
namespace {

using test::error_of;
using test::make_info;
using test::make_record;
using ::testing::HasSubstr;
namespace stdfs = std::filesystem;

constexpr uint64_t kChunks = 23;

ChunkRecord chunk(uint64_t id) { return make_record(id, 1 + uint32_t(id * 5 % 17), 10, 512); }

// What `fusellm infer` does per rank: shard j holds chunks [j*S, (j+1)*S); rank r owns shards j with
// j % world == r; complete shards are skipped. Returns the shard indices it (re)wrote.
std::vector<uint32_t> run_rank(const stdfs::path& dir, uint32_t rank, uint32_t world, uint64_t shard_records,
                               bool finish = true) {
  LogitStoreWriter writer(dir, make_info(), rank, world, shard_records);
  std::vector<uint32_t> written;
  const uint32_t shards = static_cast<uint32_t>((kChunks + shard_records - 1) / shard_records);
  for (uint32_t j = rank; j < shards; j += world) {
    if (writer.shard_complete(j)) continue;
    writer.begin_shard(j);
    for (uint64_t id = j * shard_records; id < std::min(kChunks, (j + 1) * shard_records); ++id) writer.add(chunk(id));
    writer.finish_shard();
    written.push_back(j);
  }
  if (finish) writer.finish();
  return written;
}

TEST(LogitStoreResume, CrashedRunResumesToIdenticalBytes) {
  const auto clean = fusellm::test::scratch_dir("resume_clean");
  EXPECT_EQ(run_rank(clean, 0, 1, 4).size(), 6u);
  merge_manifests(clean, 1);

  const auto crashed = fusellm::test::scratch_dir("resume_crashed");
  // A real crash: a child process commits shards 0..3, then dies in the middle of shard 4 (no destructors,
  // no flush), leaving its temp file behind.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    LogitStoreWriter writer(crashed, make_info(), 0, 1, 4);
    for (uint32_t j = 0; j < 4; ++j) {
      writer.begin_shard(j);
      for (uint64_t id = j * 4; id < j * 4 + 4; ++id) writer.add(chunk(id));
      writer.finish_shard();
    }
    writer.begin_shard(4);
    writer.add(chunk(16));
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  bool temp_left = false;
  for (const auto& e : stdfs::directory_iterator(crashed))
    temp_left |= e.path().filename().string().rfind("shard-00004.bin.tmp.", 0) == 0;
  ASSERT_TRUE(temp_left) << "the simulated crash should leave shard 4's temp file";

  // More damage: shard 1 truncated after commit; shard 2 renamed into place but its progress entry lost (a
  // crash between the rename and the progress update); a stray progress temp file.
  stdfs::resize_file(crashed / "shard-00001.bin", stdfs::file_size(crashed / "shard-00001.bin") / 2);
  {
    auto progress = nlohmann::json::parse(test::file_bytes(crashed / "progress.rank0.json"));
    auto& shards = progress["shards"];
    for (auto it = shards.begin(); it != shards.end(); ++it)
      if ((*it)["shard_index"] == 2) {
        shards.erase(it);
        break;
      }
    std::ofstream(crashed / "progress.rank0.json", std::ios::trunc) << progress.dump(2) << "\n";
  }
  std::ofstream(crashed / "progress.rank0.json.tmp.4242.0") << "{ half a json";

  {
    LogitStoreWriter probe(crashed, make_info(), 0, 1, 4);
    EXPECT_TRUE(probe.shard_complete(0));
    EXPECT_FALSE(probe.shard_complete(1));  // truncated
    EXPECT_FALSE(probe.shard_complete(2));  // no progress entry
    EXPECT_TRUE(probe.shard_complete(3));
    EXPECT_FALSE(probe.shard_complete(4));  // only a temp file
    EXPECT_FALSE(probe.shard_complete(5));  // never started
  }
  EXPECT_EQ(run_rank(crashed, 0, 1, 4), (std::vector<uint32_t>{1, 2, 4, 5}));
  merge_manifests(crashed, 1);

  const auto want = test::directory_contents(clean);
  const auto got = test::directory_contents(crashed);
  std::set<std::string> want_names, got_names;
  for (const auto& [name, bytes] : want) want_names.insert(name);
  for (const auto& [name, bytes] : got) got_names.insert(name);
  ASSERT_EQ(got_names, want_names);
  for (const auto& [name, bytes] : want) EXPECT_TRUE(got.at(name) == bytes) << name << " differs";

  // A finished store rerun does nothing and stays identical.
  EXPECT_TRUE(run_rank(crashed, 0, 1, 4).empty());
  merge_manifests(crashed, 1);
  EXPECT_EQ(test::directory_contents(crashed), want);
}

TEST(LogitStoreResume, ResumeWithOtherSettingsIsRefused) {
  const auto dir = fusellm::test::scratch_dir("resume_settings");
  run_rank(dir, 0, 1, 4, false);
  StoreInfo other = make_info();
  other.tokenizer_hash = "tok-zzzz";
  EXPECT_THAT(error_of([&] { LogitStoreWriter(dir, other, 0, 1, 4); }),
              ::testing::AllOf(HasSubstr("progress.rank0.json"), HasSubstr("tokenizer_hash")));
  EXPECT_THAT(error_of([&] { LogitStoreWriter(dir, make_info(), 0, 1, 5); }), HasSubstr("shard size"));
}

TEST(LogitStoreResume, TwoRanksHoldTheSameRecordsAsOne) {
  const auto one = fusellm::test::scratch_dir("ranks_one");
  run_rank(one, 0, 1, 5);
  merge_manifests(one, 1);

  // Two ranks with a different shard size, finishing in either order.
  const auto two_a = fusellm::test::scratch_dir("ranks_two_a");
  const auto two_b = fusellm::test::scratch_dir("ranks_two_b");
  run_rank(two_a, 1, 2, 3);
  EXPECT_THAT(error_of([&] { merge_manifests(two_a, 2); }), HasSubstr("rank 0 of 2 has not finished"));
  run_rank(two_a, 0, 2, 3);
  merge_manifests(two_a, 2);
  run_rank(two_b, 0, 2, 3);
  run_rank(two_b, 1, 2, 3);
  merge_manifests(two_b, 2);
  EXPECT_EQ(test::file_bytes(two_a / "manifest.json"), test::file_bytes(two_b / "manifest.json"));

  LogitStoreReader a(one), b(two_a);
  EXPECT_EQ(b.world_size(), 2u);
  EXPECT_NE(a.shards().size(), b.shards().size());
  ASSERT_EQ(a.num_records(), kChunks);
  ASSERT_EQ(b.num_records(), kChunks);
  ASSERT_EQ(a.num_tokens(), b.num_tokens());
  for (uint64_t id = 0; id < kChunks; ++id) {
    const RecordView x = a.record(id), y = b.record(id);
    ASSERT_EQ(x.num_positions(), y.num_positions());
    const size_t T = x.num_positions(), k = x.k();
    EXPECT_EQ(std::memcmp(x.raw_input_ids(), y.raw_input_ids(), T * 2), 0) << id;
    EXPECT_EQ(std::memcmp(x.raw_topk_ids(), y.raw_topk_ids(), T * k * 2), 0) << id;
    EXPECT_EQ(std::memcmp(x.raw_next_token_logprobs(), y.raw_next_token_logprobs(), T * 2), 0) << id;
    EXPECT_EQ(std::memcmp(x.raw_topk_logprobs(), y.raw_topk_logprobs(), T * k * 2), 0) << id;
    EXPECT_EQ(float_bits(x.mean_ce()), float_bits(y.mean_ce())) << id;
    // And the content is the source's, not merely equal between the two.
    EXPECT_EQ(x.input_id(0), chunk(id).input_ids[0]);
  }
  // Shards in the manifest are sorted by first chunk id.
  for (size_t s = 1; s < b.shards().size(); ++s) EXPECT_LT(b.shards()[s - 1].first_chunk_id, b.shards()[s].first_chunk_id);
}

TEST(LogitStoreResume, MergeRejectsOverlappingRanks) {
  const auto dir = fusellm::test::scratch_dir("ranks_overlap");
  // Both ranks write shard 0 (a misconfigured launcher): the second rename wins, both parts list it.
  for (uint32_t rank = 0; rank < 2; ++rank) {
    LogitStoreWriter writer(dir, make_info(), rank, 2, 4);
    writer.begin_shard(0);
    writer.add(chunk(0));
    writer.finish_shard();
    writer.finish();
  }
  EXPECT_THAT(error_of([&] { merge_manifests(dir, 2); }), HasSubstr("shard-00000.bin"));
}

}  // namespace
}  // namespace fusellm::teacher
