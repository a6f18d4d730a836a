// Logit store round trips, random access, size, statistics and the errors a damaged store must produce.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "common/test_paths.hpp"
#include "fusellm/teacher/half_float.hpp"
#include "store_test_util.hpp"

namespace fusellm::teacher {
namespace {

using test::error_of;
using test::make_info;
using test::make_record;
using ::testing::AllOf;
using ::testing::HasSubstr;
namespace stdfs = std::filesystem;

// Writes `shards` (each a list of records) as one rank and merges the manifest.
void write_store(const stdfs::path& dir, const StoreInfo& info, const std::vector<std::vector<ChunkRecord>>& shards) {
  LogitStoreWriter writer(dir, info, 0, 1, 64);
  for (size_t j = 0; j < shards.size(); ++j) {
    writer.begin_shard(static_cast<uint32_t>(j));
    for (const ChunkRecord& r : shards[j]) writer.add(r);
    writer.finish_shard();
  }
  writer.finish();
  merge_manifests(dir, 1);
}

std::vector<std::vector<ChunkRecord>> make_shards(const StoreInfo& info, std::vector<std::vector<uint64_t>> ids,
                                                  uint32_t base_positions = 1) {
  std::vector<std::vector<ChunkRecord>> shards;
  for (const auto& shard_ids : ids) {
    shards.emplace_back();
    for (uint64_t id : shard_ids)
      shards.back().push_back(make_record(id, base_positions + uint32_t(id * 7 % 29), info.k, info.vocab_size));
  }
  return shards;
}

// The top-k row the store must hold: the input pairs sorted by log-prob descending (ties by id).
std::vector<std::pair<float, int32_t>> expected_row(const ChunkRecord& r, uint32_t t, uint32_t k) {
  std::vector<std::pair<float, int32_t>> row;
  for (uint32_t i = 0; i < k; ++i) row.emplace_back(r.topk_logprobs[t * k + i], r.topk_ids[t * k + i]);
  std::sort(row.begin(), row.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  return row;
}

// Checks one stored record against its source, with the dtype's rounding bound (half an ulp, relative).
void expect_matches(const RecordView& view, const ChunkRecord& r, const StoreInfo& info) {
  const uint32_t T = static_cast<uint32_t>(r.num_positions()), k = info.k;
  ASSERT_EQ(view.chunk_id(), r.chunk_id);
  ASSERT_EQ(view.num_positions(), T);
  ASSERT_EQ(view.k(), k);
  const int mantissa_bits = info.logprob_dtype == LogprobDtype::F16 ? 10 : 7;
  auto close = [&](float stored, float x) {
    const float bound = std::max(std::ldexp(std::fabs(x), -(mantissa_bits + 1)), 1e-7f);
    return std::fabs(stored - x) <= bound;
  };
  double ce = 0;
  for (uint32_t t = 0; t < T; ++t) {
    ASSERT_EQ(view.input_id(t), r.input_ids[t]);
    if (t + 1 < T) {
      ASSERT_TRUE(close(view.next_token_logprob(t), r.next_token_logprob[t])) << t;
      ce -= r.next_token_logprob[t];
    } else {
      ASSERT_TRUE(std::isnan(view.next_token_logprob(t)));
    }
    const auto row = expected_row(r, t, k);
    for (uint32_t i = 0; i < k; ++i) {
      ASSERT_EQ(view.topk_id(t, i), row[i].second) << "chunk " << r.chunk_id << " t " << t << " i " << i;
      ASSERT_TRUE(close(view.topk_logprob(t, i), row[i].first)) << view.topk_logprob(t, i) << " vs " << row[i].first;
      if (i > 0) ASSERT_GE(view.topk_logprob(t, i - 1), view.topk_logprob(t, i));
    }
  }
  const double want_ce = T > 1 ? ce / (T - 1) : 0.0;
  EXPECT_NEAR(view.mean_ce(), want_ce, 1e-5 * std::max(1.0, want_ce));
  // Bulk accessors agree with the element accessors.
  const ChunkRecord back = view.to_record();
  for (uint32_t i = 0; i < T * k; ++i) {
    ASSERT_EQ(back.topk_ids[i], view.topk_id(i / k, i % k));
    ASSERT_EQ(float_bits(back.topk_logprobs[i]), float_bits(view.topk_logprob(i / k, i % k)));
  }
}

TEST(LogitStore, RoundTripFp16WithU16Ids) {
  const auto dir = fusellm::test::scratch_dir("store_f16");
  const StoreInfo info = make_info(512, 10, LogprobDtype::F16);
  ASSERT_EQ(info.id_dtype(), IdDtype::U16);
  const auto shards = make_shards(info, {{0, 1, 2, 3}, {4, 5, 6}, {7, 8, 9, 10, 11}});
  write_store(dir, info, shards);

  LogitStoreReader reader(dir, StoreExpectations{info.tokenizer_hash, info.chunk_dataset_hash, 10});
  EXPECT_EQ(reader.num_records(), 12u);
  EXPECT_EQ(reader.info().model_name, "stories260K");
  EXPECT_EQ(reader.info().id_dtype(), IdDtype::U16);
  for (const auto& shard : shards)
    for (const ChunkRecord& r : shard) {
      expect_matches(reader.record(r.chunk_id), r, info);
#ifdef __FLT16_MAX__
      // Stored bits are exactly the compiler's fp16 rounding of the input.
      const RecordView view = reader.record(r.chunk_id);
      const auto row = expected_row(r, 0, info.k);
      const _Float16 h = static_cast<_Float16>(row[0].first);
      uint16_t bits;
      std::memcpy(&bits, &h, 2);
      EXPECT_EQ(view.raw_topk_logprobs()[0], bits);
#endif
    }
}

TEST(LogitStore, RoundTripBf16WithU32Ids) {
  const auto dir = fusellm::test::scratch_dir("store_bf16");
  const StoreInfo info = make_info(100000, 8, LogprobDtype::BF16);
  ASSERT_EQ(info.id_dtype(), IdDtype::U32);
  const auto shards = make_shards(info, {{10, 11, 12}, {13, 14}}, 3);
  write_store(dir, info, shards);
  LogitStoreReader reader(dir);
  EXPECT_EQ(reader.info().id_dtype(), IdDtype::U32);
  EXPECT_EQ(reader.info().logprob_dtype, LogprobDtype::BF16);
  bool saw_large_id = false;
  for (const auto& shard : shards)
    for (const ChunkRecord& r : shard) {
      expect_matches(reader.record(r.chunk_id), r, info);
      for (int32_t id : r.topk_ids) saw_large_id |= id > 65535;
    }
  EXPECT_TRUE(saw_large_id) << "the test data should need 32-bit ids";
}

TEST(LogitStore, IdWidthBoundary) {
  EXPECT_EQ(make_info(65536).id_dtype(), IdDtype::U16);
  EXPECT_EQ(make_info(65537).id_dtype(), IdDtype::U32);
  const auto dir = fusellm::test::scratch_dir("store_u16_max");
  const StoreInfo info = make_info(65536, 2);
  ChunkRecord r = make_record(5, 3, 2, 65536);
  r.input_ids[1] = 65535;
  r.topk_ids[0] = 65535;
  write_store(dir, info, {{r}});
  LogitStoreReader reader(dir);
  EXPECT_EQ(reader.record(5).input_id(1), 65535);
  bool found = false;
  for (uint32_t i = 0; i < 2; ++i) found |= reader.record(5).topk_id(0, i) == 65535;
  EXPECT_TRUE(found);
}

TEST(LogitStore, RandomAccessAndChunkOrderIteration) {
  const auto dir = fusellm::test::scratch_dir("store_random");
  const StoreInfo info = make_info(300, 4);
  // Shards hold chunk ranges out of order, and ids within a shard are not contiguous.
  const auto shards = make_shards(info, {{900, 905, 950}, {3, 1, 2}, {400, 17}});
  write_store(dir, info, shards);
  LogitStoreReader reader(dir);
  std::vector<uint64_t> order;
  for (const RecordView view : reader) order.push_back(view.chunk_id());
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 2, 3, 17, 400, 900, 905, 950}));
  for (uint64_t id : {950, 1, 400, 905, 2, 17, 900, 3}) {
    const ChunkRecord* source = nullptr;
    for (const auto& s : shards)
      for (const auto& r : s)
        if (r.chunk_id == id) source = &r;
    expect_matches(reader.record(id), *source, info);
  }
  EXPECT_FALSE(reader.contains(4));
  EXPECT_FALSE(reader.find(4).has_value());
  EXPECT_THAT(error_of([&] { reader.record(4); }), HasSubstr("no chunk 4"));
  // The manifest lists shards by first chunk id: 1 (shard 1), 17 (shard 2), 900 (shard 0).
  ASSERT_EQ(reader.shards().size(), 3u);
  EXPECT_EQ(reader.shards()[0].file, "shard-00001.bin");
  EXPECT_EQ(reader.shards()[1].file, "shard-00002.bin");
  EXPECT_EQ(reader.shards()[2].file, "shard-00000.bin");
}

TEST(LogitStore, BytesPerTokenAndStatistics) {
  const auto dir = fusellm::test::scratch_dir("store_size");
  const StoreInfo info = make_info(32000, 10);
  std::vector<ChunkRecord> chunks;
  for (uint64_t id = 0; id < 8; ++id) chunks.push_back(make_record(id, 512, 10, 32000));
  write_store(dir, info, {{chunks[0], chunks[1], chunks[2], chunks[3]}, {chunks[4], chunks[5], chunks[6], chunks[7]}});
  LogitStoreReader reader(dir);
  const StoreStats stats = compute_store_stats(reader);
  EXPECT_EQ(stats.records, 8u);
  EXPECT_EQ(stats.tokens, 8u * 512);
  EXPECT_EQ(stats.predicted_tokens, 8u * 511);
  uint64_t on_disk = 0;
  for (const auto& entry : stdfs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("shard-", 0) == 0 || name == "manifest.json") on_disk += entry.file_size();
  }
  EXPECT_EQ(stats.bytes, on_disk);
  std::printf("[ logit store ] k=10, u16 ids, f16: %.2f bytes/token including header, index, footer and "
              "manifest (%llu bytes for %llu tokens); official FuseLLM Arrow layout ~100 bytes/token\n",
              stats.bytes_per_token, static_cast<unsigned long long>(stats.bytes),
              static_cast<unsigned long long>(stats.tokens));
  EXPECT_LE(stats.bytes_per_token, 4.0 * info.k + 8);

  // Statistics against the fp32 source values.
  double ce = 0, mass = 0;
  for (const ChunkRecord& r : chunks) {
    for (size_t t = 0; t + 1 < r.num_positions(); ++t) ce -= r.next_token_logprob[t];
    for (float lp : r.topk_logprobs) mass += std::exp(double(lp));
  }
  EXPECT_NEAR(stats.mean_ce, ce / (8 * 511), 1e-4);
  EXPECT_NEAR(stats.mean_chunk_ce, ce / (8 * 511), 1e-4);  // equal-length chunks
  EXPECT_NEAR(stats.mean_topk_mass, mass / (8 * 512), 1e-3);
  EXPECT_GT(stats.mean_topk_mass, 0.0);
  EXPECT_LT(stats.mean_topk_mass, 1.0);
}

TEST(LogitStore, DeterministicBytes) {
  const auto a = fusellm::test::scratch_dir("store_det_a");
  const auto b = fusellm::test::scratch_dir("store_det_b");
  const StoreInfo info = make_info();
  write_store(a, info, make_shards(info, {{0, 1}, {2, 3, 4}}));
  write_store(b, info, make_shards(info, {{0, 1}, {2, 3, 4}}));
  EXPECT_EQ(test::directory_contents(a), test::directory_contents(b));
}

TEST(LogitStore, WriterRejectsBadRecords) {
  const auto dir = fusellm::test::scratch_dir("store_bad_records");
  LogitStoreWriter writer(dir, make_info(100, 3), 0, 1, 8);
  writer.begin_shard(0);
  ChunkRecord r = make_record(7, 4, 3, 100);
  r.topk_ids[5] = 100;
  EXPECT_THAT(error_of([&] { writer.add(r); }), AllOf(HasSubstr("chunk 7"), HasSubstr("top-k id 100")));
  r = make_record(7, 4, 3, 100);
  r.topk_logprobs.pop_back();
  EXPECT_THAT(error_of([&] { writer.add(r); }), HasSubstr("top-k arrays"));
  r = make_record(7, 4, 3, 100);
  r.next_token_logprob[1] = std::nanf("");
  EXPECT_THAT(error_of([&] { writer.add(r); }), HasSubstr("NaN"));
  r = make_record(7, 4, 3, 100);
  writer.add(r);
  EXPECT_THAT(error_of([&] { writer.add(r); }), HasSubstr("added twice"));
  EXPECT_THAT(error_of([] { LogitStoreWriter(fusellm::test::scratch_dir("store_k"), make_info(5, 6), 0, 1, 8); }),
              HasSubstr("k = 6 exceeds vocab_size"));
}

class DamagedStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fusellm::test::scratch_dir(std::string("damaged_") +
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    write_store(dir_, make_info(), make_shards(make_info(), {{0, 1, 2}, {3, 4, 5}}, 20));
  }
  std::string open_error(StoreExpectations expect = {}, ReaderOptions options = {}) {
    return error_of([&] { LogitStoreReader reader(dir_, expect, options); });
  }
  stdfs::path dir_;
};

TEST_F(DamagedStore, IntactStoreOpens) { EXPECT_EQ(open_error({"tok-aaaa", "chunks-bbbb", 10}), ""); }

TEST_F(DamagedStore, FlippedByteIsChecksumErrorNamingShard) {
  const auto shard = dir_ / "shard-00001.bin";
  std::string bytes = test::file_bytes(shard);
  bytes[100] ^= 0x01;  // inside the first record's payload
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_THAT(open_error(), AllOf(HasSubstr("shard-00001.bin"), HasSubstr("checksum mismatch")));
  // The manifest's block checksums (4 KiB blocks for a shard this small) say where: the first block.
  EXPECT_THAT(open_error(), HasSubstr(fmt::format("in bytes 0..{} (block 1 of", std::min<size_t>(4096, bytes.size()) - 1)));
  EXPECT_EQ(open_error({}, ReaderOptions{false}), "");  // skipping verification trusts the payload
}

TEST_F(DamagedStore, TruncatedShard) {
  const auto shard = dir_ / "shard-00000.bin";
  stdfs::resize_file(shard, stdfs::file_size(shard) - 10);
  EXPECT_THAT(open_error(), AllOf(HasSubstr("shard-00000.bin"), HasSubstr("truncated")));
  EXPECT_THAT(open_error({}, ReaderOptions{false}), AllOf(HasSubstr("shard-00000.bin"), HasSubstr("truncated")));
}

TEST_F(DamagedStore, MissingShard) {
  stdfs::remove(dir_ / "shard-00001.bin");
  EXPECT_THAT(open_error(), AllOf(HasSubstr("shard-00001.bin"), HasSubstr("missing shard")));
}

TEST_F(DamagedStore, TruncatedManifest) {
  const auto manifest = dir_ / "manifest.json";
  stdfs::resize_file(manifest, stdfs::file_size(manifest) / 2);
  EXPECT_THAT(open_error(), HasSubstr("manifest.json"));
}

TEST_F(DamagedStore, MissingManifest) {
  stdfs::remove(dir_ / "manifest.json");
  EXPECT_THAT(open_error(), AllOf(HasSubstr("manifest.json"), HasSubstr("missing")));
}

TEST_F(DamagedStore, WrongTokenizerDatasetOrK) {
  EXPECT_THAT(open_error({std::string("tok-other")}),
              AllOf(HasSubstr("manifest.json"), HasSubstr("tokenizer hash tok-aaaa"), HasSubstr("tok-other")));
  EXPECT_THAT(open_error({std::nullopt, std::string("chunks-other")}), HasSubstr("chunk dataset chunks-bbbb"));
  EXPECT_THAT(open_error({std::nullopt, std::nullopt, 5u}), HasSubstr("top-10"));
}

TEST_F(DamagedStore, ShardHeaderDisagreesWithManifest) {
  // A shard from a k=4 store put in place of a k=10 one (its checksum updated in the manifest would not
  // help either: the structure check compares k).
  const auto other = fusellm::test::scratch_dir("store_other_k");
  write_store(other, make_info(512, 4), make_shards(make_info(512, 4), {{0}}));
  stdfs::copy_file(other / "shard-00000.bin", dir_ / "shard-00000.bin", stdfs::copy_options::overwrite_existing);
  EXPECT_THAT(open_error({}, ReaderOptions{false}), HasSubstr("shard-00000.bin"));
}

}  // namespace
}  // namespace fusellm::teacher
