// KVCache: reserved storage (decoding appends in place instead of re-concatenating the cache every step),
// copy on write for copied caches, and row selection — each compared with the plain concatenation.
#include <gtest/gtest.h>

#include "fusellm/model/causal_lm.hpp"

namespace fusellm::model {
namespace {

at::Tensor step(int64_t batch, int64_t t, double base) {
  return at::arange(batch * 2 * t * 3, at::kDouble).reshape({batch, 2, t, 3}).add(base);
}

TEST(KVCache, ReservedAppendsWriteInPlaceAndEqualConcatenation) {
  KVCache plain, reserved;
  reserved.reserve(8);
  plain.append(0, step(3, 5, 0), step(3, 5, 100));  // a prefill of 5 positions
  reserved.append(0, step(3, 5, 0), step(3, 5, 100));
  const void* storage = reserved.keys[0].data_ptr();
  for (int i = 1; i <= 8; ++i) {  // 8 decoding steps fit the reservation
    plain.append(0, step(3, 1, 1000 * i), step(3, 1, 2000 * i));
    const auto [k, v] = reserved.append(0, step(3, 1, 1000 * i), step(3, 1, 2000 * i));
    EXPECT_EQ(k.data_ptr(), storage) << "step " << i << " copied the cache";
    EXPECT_TRUE(at::equal(k, plain.keys[0]));
    EXPECT_TRUE(at::equal(v, plain.values[0]));
  }
  EXPECT_EQ(reserved.length(), 13);
  // Past the reservation: one reallocation with room for 8 more, same contents.
  reserved.append(0, step(3, 1, 9), step(3, 1, 9));
  plain.append(0, step(3, 1, 9), step(3, 1, 9));
  EXPECT_NE(reserved.keys[0].data_ptr(), storage);
  EXPECT_TRUE(at::equal(reserved.keys[0], plain.keys[0]));
  EXPECT_EQ(reserved.key_storage[0].size(2), 14 + 8);
}

TEST(KVCache, CopiedCachesDoNotOverwriteEachOther) {
  KVCache a;
  a.reserve(4);
  a.append(0, step(1, 3, 0), step(1, 3, 0));
  KVCache b = a;  // two branches from the same prefix
  a.append(0, step(1, 1, 50), step(1, 1, 50));
  b.append(0, step(1, 1, 70), step(1, 1, 70));
  EXPECT_TRUE(at::equal(a.keys[0].narrow(2, 3, 1), step(1, 1, 50)));
  EXPECT_TRUE(at::equal(b.keys[0].narrow(2, 3, 1), step(1, 1, 70)));
  EXPECT_TRUE(at::equal(a.keys[0].narrow(2, 0, 3), b.keys[0].narrow(2, 0, 3)));
}

TEST(KVCache, RowsSelectBatchRowsAndKeepTheReservation) {
  KVCache c;
  c.reserve(4);
  c.append(0, step(3, 2, 0), step(3, 2, 10));
  c.attention_mask = at::tensor({1, 1, 0, 1, 1, 1}, at::kLong).reshape({3, 2});
  const at::Tensor index = at::tensor({2, 0, 0}, at::kLong);
  KVCache r = c.rows(index);
  EXPECT_TRUE(at::equal(r.keys[0], c.keys[0].index_select(0, index)));
  EXPECT_TRUE(at::equal(r.values[0], c.values[0].index_select(0, index)));
  EXPECT_TRUE(at::equal(r.attention_mask, c.attention_mask.index_select(0, index)));
  const void* storage = r.keys[0].data_ptr();
  r.append(0, step(3, 1, 5), step(3, 1, 5));
  EXPECT_EQ(r.keys[0].data_ptr(), storage);  // still room: appended in place
  EXPECT_TRUE(at::equal(r.keys[0].narrow(2, 2, 1), step(3, 1, 5)));
  EXPECT_TRUE(at::equal(c.keys[0], step(3, 2, 0)));  // the original is untouched
}

}  // namespace
}  // namespace fusellm::model
