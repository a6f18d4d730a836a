// Per-position sequence CE (seq_ce [B, T]) for packed sequences: several chunks share one row, each with its
// own CE. Fusing a packed row must give, on every chunk's positions, exactly what fusing that chunk alone
// with its CE as a [B] seq_ce gives; and a [B, T] seq_ce constant along T must equal the [B] form.
#include <gtest/gtest.h>

#include "fusellm/fusion/fusion.hpp"
#include "fusellm/util/error.hpp"

using namespace fusellm::fusion;

namespace {

constexpr int64_t kB = 2, kT = 9, kK = 4, kSources = 3;

// Chunk boundaries per row: [begin, end) pairs covering 0..T.
const std::vector<std::vector<std::pair<int64_t, int64_t>>> kSegments = {
    {{0, 4}, {4, 9}},
    {{0, 2}, {2, 6}, {6, 9}},
};

// Per row, per segment, per source: the chunk CE. Row 1 segment 1 has an exact tie between sources 0 and 2
// (minCE must take source 0 there); the argmin differs between neighbouring segments everywhere else.
const double kChunkCE[2][3][kSources] = {
    {{1.0, 0.4, 2.0}, {0.3, 1.5, 0.9}, {0, 0, 0}},
    {{2.5, 2.0, 0.7}, {0.6, 1.1, 0.6}, {1.9, 0.2, 1.4}},
};

std::vector<SourceBatch> random_sources() {
  at::manual_seed(1234);
  std::vector<SourceBatch> sources;
  for (int64_t s = 0; s < kSources; ++s) {
    SourceBatch sb;
    // Small id range so sources overlap (avgCE merges duplicates); about one slot in five empty.
    sb.ids = at::randint(0, 12, {kB, kT, kK}, at::kLong);
    sb.ids = at::where(at::rand({kB, kT, kK}, at::kDouble).lt(0.2), at::full_like(sb.ids, -1), sb.ids);
    sb.vals = at::randn({kB, kT, kK}, at::kDouble) * 2;
    sb.seq_ce = at::zeros({kB, kT}, at::kDouble);
    sb.token_ce = at::rand({kB, kT}, at::kDouble);
    for (int64_t b = 0; b < kB; ++b)
      for (size_t g = 0; g < kSegments[size_t(b)].size(); ++g) {
        const auto [begin, end] = kSegments[size_t(b)][g];
        sb.seq_ce[b].narrow(0, begin, end - begin).fill_(kChunkCE[b][g][s]);
      }
    sources.push_back(sb);
  }
  return sources;
}

// The sources restricted to row b, positions [begin, end), with the chunk's CE as a [1] seq_ce.
std::vector<SourceBatch> one_chunk(const std::vector<SourceBatch>& sources, int64_t b, int64_t begin, int64_t end) {
  std::vector<SourceBatch> out;
  for (const auto& s : sources) {
    SourceBatch c;
    c.ids = s.ids.narrow(0, b, 1).narrow(1, begin, end - begin).contiguous();
    c.vals = s.vals.narrow(0, b, 1).narrow(1, begin, end - begin).contiguous();
    c.seq_ce = s.seq_ce[b][begin].reshape({1}).clone();
    c.token_ce = s.token_ce.narrow(0, b, 1).narrow(1, begin, end - begin).contiguous();
    out.push_back(c);
  }
  return out;
}

}  // namespace

TEST(FusionPackedCE, EachChunkFusesAsIfAlone) {
  const auto sources = random_sources();
  for (Strategy strategy : {Strategy::MinCE, Strategy::AvgCE}) {
    SCOPED_TRACE(to_string(strategy));
    const SparseDist packed = fuse(sources, strategy, 1.5);
    const at::Tensor weights = strategy_weights(sources, strategy);
    ASSERT_EQ(weights.sizes(), (at::IntArrayRef{kB, kT, kSources}));
    int checked_rows = 0;
    for (int64_t b = 0; b < kB; ++b)
      for (const auto& [begin, end] : kSegments[size_t(b)]) {
        const auto chunk = one_chunk(sources, b, begin, end);
        const SparseDist alone = fuse(chunk, strategy, 1.5);
        const at::Tensor ids = packed.ids.narrow(0, b, 1).narrow(1, begin, end - begin);
        const at::Tensor probs = packed.probs.narrow(0, b, 1).narrow(1, begin, end - begin);
        ASSERT_EQ(ids.sizes(), alone.ids.sizes());
        EXPECT_TRUE(ids.equal(alone.ids)) << "row " << b << " chunk at " << begin;
        EXPECT_TRUE(probs.allclose(alone.probs, 0, 1e-14)) << "row " << b << " chunk at " << begin;
        EXPECT_TRUE(weights.narrow(0, b, 1).narrow(1, begin, end - begin).allclose(strategy_weights(chunk, strategy),
                                                                                  0, 1e-15));
        checked_rows += int(end - begin);
      }
    EXPECT_EQ(checked_rows, kB * kT);
  }
  // The tie in row 1, chunk [2, 6): sources 0 and 2 share the minimum → source 0.
  const at::Tensor w = strategy_weights(sources, Strategy::MinCE);
  for (int64_t t = 2; t < 6; ++t) EXPECT_EQ(w[1][t][0].item<double>(), 1.0) << t;
  // Row 0, chunk [4, 9): source 0 has the lowest CE; chunk [0, 4): source 1.
  EXPECT_EQ(w[0][3][1].item<double>(), 1.0);
  EXPECT_EQ(w[0][4][0].item<double>(), 1.0);
}

TEST(FusionPackedCE, ConstantAlongTEqualsPerSequenceCE) {
  auto per_position = random_sources();
  std::vector<SourceBatch> per_sequence = per_position;
  for (size_t s = 0; s < per_position.size(); ++s) {
    per_sequence[s].seq_ce = per_position[s].seq_ce.select(1, 0).clone();  // [B]
    per_position[s].seq_ce = per_sequence[s].seq_ce.unsqueeze(1).expand({kB, kT}).contiguous();
  }
  for (Strategy strategy : {Strategy::MinCE, Strategy::AvgCE}) {
    SCOPED_TRACE(to_string(strategy));
    EXPECT_TRUE(strategy_weights(per_position, strategy).equal(strategy_weights(per_sequence, strategy)));
    const SparseDist a = fuse(per_position, strategy, 1.0), b = fuse(per_sequence, strategy, 1.0);
    EXPECT_TRUE(a.ids.equal(b.ids));
    EXPECT_TRUE(a.probs.equal(b.probs));
    // A [B] source next to [B, T] ones is broadcast over T.
    std::vector<SourceBatch> mixed = per_position;
    mixed[1] = per_sequence[1];
    EXPECT_TRUE(fuse(mixed, strategy, 1.0).probs.equal(b.probs));
  }
}

TEST(FusionPackedCE, RejectsSeqCEOfTheWrongLength) {
  auto sources = random_sources();
  sources[2].seq_ce = at::zeros({kB, kT - 1}, at::kDouble);
  EXPECT_THROW(strategy_weights(sources, Strategy::MinCE), fusellm::Error);
  sources[2].seq_ce = at::zeros({kB, kT, 1}, at::kDouble);
  EXPECT_THROW(fuse(sources, Strategy::AvgCE, 1.0), fusellm::Error);
}
