// train.document_mask: PackedSequenceSource's segment ids (one per document inside a packed sequence, the
// document running in from the previous sequence being segment 0) checked against expectations derived
// here from the document lengths, with and without restart_positions; the config key; and a packed batch
// through a model giving every document piece the logits it has when run alone.
#include <gtest/gtest.h>

#include <numeric>

#include "common/test_paths.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/batch_source.hpp"
#include "fusellm/train/train_config.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::train {
namespace {

using Documents = std::vector<std::vector<int64_t>>;

// Expected segment and position of every token of every full sequence, from the stream of non-empty
// documents: token g belongs to document doc_of[g]; its segment is the number of documents that begin
// after the sequence's first token and up to g; its restarted position counts from the later of the
// document's start and the sequence's start.
struct Expected {
  std::vector<int64_t> tokens, segments, positions;
};

Expected expected_layout(const Documents& docs, int64_t max_length) {
  std::vector<int64_t> stream, doc_of, doc_begin;
  int64_t doc_index = 0;
  for (const auto& doc : docs) {
    if (doc.empty()) continue;
    const auto begin = static_cast<int64_t>(stream.size());
    for (int64_t token : doc) {
      stream.push_back(token);
      doc_of.push_back(doc_index);
      doc_begin.push_back(begin);
    }
    ++doc_index;
  }
  Expected e;
  const int64_t sequences = static_cast<int64_t>(stream.size()) / max_length;
  for (int64_t s = 0; s < sequences; ++s) {
    const int64_t first = s * max_length;
    for (int64_t g = first; g < first + max_length; ++g) {
      e.tokens.push_back(stream[g]);
      e.segments.push_back(doc_of[g] - doc_of[first]);
      e.positions.push_back(g - std::max(doc_begin[g], first));
    }
  }
  return e;
}

at::Tensor as_matrix(const std::vector<int64_t>& values, int64_t cols) {
  return at::tensor(values, at::kLong).view({-1, cols});
}

// Lengths chosen so that a document starts exactly at a sequence boundary (offset 8), one spans three
// sequences, two sequences hold three documents each, and an empty document is skipped.
const Documents kDocs = {{1, 2, 3},        {4, 5, 6, 7, 8}, {9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22},
                         {},               {23},            {24, 25},
                         {26, 27},         {28, 29, 30, 31, 32, 33}};
constexpr int64_t kMaxLength = 4;

std::vector<int64_t> all_sequences(const PackedSequenceSource& src) {
  std::vector<int64_t> ids(static_cast<size_t>(src.num_sequences()));
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

TEST(DocumentMaskSource, SegmentIdsFollowDocumentStartsWithRestartedPositions) {
  const Expected e = expected_layout(kDocs, kMaxLength);
  PackedSequenceSource src(kDocs, kMaxLength, 3, /*restart_positions=*/true, /*document_mask=*/true);
  ASSERT_EQ(src.num_sequences(), 8);  // 33 tokens → 8 full sequences of 4
  TrainBatch b = src.make_batch(all_sequences(src));
  ASSERT_TRUE(b.segment_ids.defined());
  EXPECT_TRUE(at::equal(b.input_ids, as_matrix(e.tokens, kMaxLength)));
  EXPECT_TRUE(at::equal(b.segment_ids, as_matrix(e.segments, kMaxLength))) << b.segment_ids;
  EXPECT_TRUE(at::equal(b.position_ids, as_matrix(e.positions, kMaxLength))) << b.position_ids;
  // Spot checks written out by hand: sequence 0 = 1 2 3 | 4, sequence 2 = 9..12 (a document starting at
  // column 0 is segment 0), sequence 5 = 21 22 | 23 | 24, sequence 6 = 25 | 26 27 | 28.
  EXPECT_TRUE(at::equal(b.segment_ids[0], at::tensor(std::vector<int64_t>{0, 0, 0, 1})));
  EXPECT_TRUE(at::equal(b.segment_ids[2], at::tensor(std::vector<int64_t>{0, 0, 0, 0})));
  EXPECT_TRUE(at::equal(b.segment_ids[5], at::tensor(std::vector<int64_t>{0, 0, 1, 2})));
  EXPECT_TRUE(at::equal(b.position_ids[5], at::tensor(std::vector<int64_t>{0, 1, 0, 0})));
  EXPECT_TRUE(at::equal(b.segment_ids[6], at::tensor(std::vector<int64_t>{0, 1, 1, 2})));
  // A subset in shuffled order picks the same rows.
  TrainBatch sub = src.make_batch({6, 0});
  EXPECT_TRUE(at::equal(sub.segment_ids[0], b.segment_ids[6]));
  EXPECT_TRUE(at::equal(sub.segment_ids[1], b.segment_ids[0]));
}

TEST(DocumentMaskSource, SegmentIdsWithoutRestartAndOffByDefault) {
  const Expected e = expected_layout(kDocs, kMaxLength);
  PackedSequenceSource masked(kDocs, kMaxLength, 3, /*restart_positions=*/false, /*document_mask=*/true);
  TrainBatch b = masked.make_batch(all_sequences(masked));
  EXPECT_FALSE(b.position_ids.defined());
  EXPECT_TRUE(at::equal(b.segment_ids, as_matrix(e.segments, kMaxLength)));
  PackedSequenceSource plain(kDocs, kMaxLength, 3, /*restart_positions=*/true);
  TrainBatch p = plain.make_batch({0, 1});
  EXPECT_FALSE(p.segment_ids.defined());  // official FuseLLM: plain concatenation
  EXPECT_TRUE(p.position_ids.defined());
}

TEST(DocumentMaskSource, ConfigKey) {
  EXPECT_FALSE(parse_train_config(json::object(), "exp.json", "/cfg", "exp").document_mask);
  TrainConfig on = parse_train_config(json{{"document_mask", true}}, "exp.json", "/cfg", "exp");
  EXPECT_TRUE(on.document_mask);
  EXPECT_EQ(on.to_json().at("document_mask"), true);
  EXPECT_THROW(parse_train_config(json{{"document_mask", "yes"}}, "exp.json", "/cfg", "exp"), Error);
}

// The source's segment ids and positions fed to a model: every document piece of every sequence gets the
// logits it has alone (also the piece running in from the previous sequence).
TEST(DocumentMaskSource, PackedBatchGivesEachPieceItsStandaloneLogits) {
  FUSELLM_REQUIRE_SHARED();
  // float64: packed and alone differ only in rounding order, which moves float64 logits by ~1e-14 on any
  // CPU (float32's ~1e-5 depends on the BLAS kernels).
  io::LoadOptions load;
  load.dtype = at::kDouble;
  auto lm = model::load_model(test::shared_dir() / "data" / "models" / "stories260K-hf", load);
  const int64_t vocab = lm->config().vocab_size;
  Documents docs;
  int64_t token = 7;
  for (int64_t len : {5, 11, 3, 9, 14, 6, 8}) {  // 56 tokens → 3 sequences of 16 (+ 8 dropped)
    std::vector<int64_t> doc;
    for (int64_t i = 0; i < len; ++i) doc.push_back(1 + (token = (token * 37 + 11) % (vocab - 1)));
    docs.push_back(doc);
  }
  PackedSequenceSource src(docs, 16, 5, /*restart_positions=*/true, /*document_mask=*/true);
  TrainBatch b = src.make_batch(all_sequences(src));
  at::NoGradGuard no_grad;
  model::ForwardArgs args;
  args.input_ids = b.input_ids;
  args.position_ids = b.position_ids;
  args.segment_ids = b.segment_ids;
  at::Tensor packed = lm->forward(args);
  args.segment_ids = at::Tensor();
  at::Tensor unmasked = lm->forward(args);
  double leak = 0.0;
  for (int64_t r = 0; r < b.input_ids.size(0); ++r) {
    for (int64_t begin = 0; begin < 16;) {
      int64_t end = begin;
      while (end < 16 && b.segment_ids[r][end].item<int64_t>() == b.segment_ids[r][begin].item<int64_t>()) ++end;
      model::ForwardArgs alone;
      alone.input_ids = b.input_ids[r].narrow(0, begin, end - begin).unsqueeze(0);
      at::Tensor reference = lm->forward(alone)[0];
      // Rounding only, in float64.
      const auto tolerance = 1e-9 + 1e-12 * reference.abs();
      const auto excess = (packed[r].narrow(0, begin, end - begin) - reference).abs() - tolerance;
      EXPECT_LE(excess.max().item<double>(), 0.0) << "sequence " << r << " columns " << begin << ".." << end;
      if (begin > 0)
        leak = std::max(leak, (unmasked[r].narrow(0, begin, end - begin) - reference).abs().max().item<double>());
      begin = end;
    }
  }
  EXPECT_GT(leak, 1e-3);  // without the segment mask the later pieces see earlier documents
}

}  // namespace
}  // namespace fusellm::train
