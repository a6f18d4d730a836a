// Block checksums: the block size adapts (≥ 4 KiB, ≤ 1024 blocks), the JSON round-trips, and a changed
// byte is located in its block; a missing or mismatched table locates nothing rather than something wrong.
#include <gtest/gtest.h>

#include "fusellm/util/block_digest.hpp"

namespace fusellm {
namespace {

TEST(BlockDigest, LocatesTheDamagedBlock) {
  std::string data(10000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 31);
  const BlockDigest digest = BlockDigest::of(data.data(), data.size());
  EXPECT_EQ(digest.block_bytes, 4096u);
  EXPECT_EQ(digest.hex.size(), 3u * 16);
  EXPECT_EQ(digest.locate_damage(data.data(), data.size()), "");
  data[9000] ^= 1;
  EXPECT_EQ(digest.locate_damage(data.data(), data.size()), " in bytes 8192..9999 (block 3 of 3)");
  data[9000] ^= 1;
  data[0] ^= 1;
  EXPECT_EQ(digest.locate_damage(data.data(), data.size()), " in bytes 0..4095 (block 1 of 3)");
  // Another length: the table does not describe this file, so nothing is claimed.
  EXPECT_EQ(digest.locate_damage(data.data(), 5000), "");
}

TEST(BlockDigest, BlockSizeKeepsTheTableSmallAndJsonRoundTrips) {
  const std::string big(9u << 20, 'a');  // 9 MiB: 16 KiB blocks, 576 of them
  const BlockDigest digest = BlockDigest::of(big.data(), big.size());
  EXPECT_EQ(digest.block_bytes, 16384u);
  EXPECT_LE(digest.hex.size() / 16, 1024u);
  json entry = json::object();
  digest.to_json(entry);
  const BlockDigest back = BlockDigest::from_json(entry, "m.json");
  EXPECT_EQ(back.block_bytes, digest.block_bytes);
  EXPECT_EQ(back.hex, digest.hex);
  EXPECT_EQ(BlockDigest::from_json(json::object(), "m.json").block_bytes, 0u);  // older manifests: none
  EXPECT_THROW(BlockDigest::from_json(json{{"block_bytes", "x"}}, "m.json"), Error);
}

}  // namespace
}  // namespace fusellm
