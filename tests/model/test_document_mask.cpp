// Packed documents with segment ids (no attention across document boundaries, positions restarting per
// document) must give each document exactly the logits it gets alone, in every family: RoPE (llama,
// gpt_neox with partial rotary), ALiBi (mpt) and a sliding window (mistral). The packed logits are also
// checked against the independent float64 golden references (logits_full.safetensors) and llama2.c's
// stories260K outputs, and without segment ids the later documents must differ (the test can fail).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "common/test_paths.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/util/error.hpp"
#include "model_test_util.hpp"

namespace fusellm::test {
namespace {

using Document = std::vector<int64_t>;

// Packed vs alone: the same arithmetic on different shapes, so only rounding differs, and by how much depends
// on the CPU's BLAS blocking. In float64 (logits stay float64) rounding is ~1e-14 on logits up to ~18: 1e-9
// is strict and portable. In float32 the batch shape alone moves stories260K's logits by ~1.4e-5 (Xeon),
// even for a row's first document, which no mask changes; the float32 check only guards that the mask
// works in that dtype too, so its bound is 100 float32 ulps of the largest logit (ulp(16) = 1.9e-6), far
// above any kernel's rounding and far below what a mask leak moves (≥ 1e-3, checked below).
constexpr double kSameAbsFloat64 = 1e-9, kSameAbsFloat32 = 100 * 1.9073486328125e-06;
// Golden README tolerances against the float64 references.
constexpr double kLogitAbs = 1e-4, kLogitRel = 1e-5;

// Deterministic token ids in [1, vocab) from a fixed LCG (independent of torch's generators).
Document random_document(int64_t length, int64_t vocab, uint64_t seed) {
  Document doc;
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < length; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    doc.push_back(1 + static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(vocab - 1)));
  }
  return doc;
}

// Rows of documents packed and right-padded to the longest row: ids (pad 0), attention mask, positions
// restarting at 0 per document, segment ids 0, 1, ... per document (padding keeps the last segment).
struct PackedBatch {
  at::Tensor ids, mask, positions, segments;
};

PackedBatch pack_rows(const std::vector<std::vector<Document>>& rows) {
  int64_t width = 0;
  for (const auto& row : rows) {
    int64_t len = 0;
    for (const auto& doc : row) len += static_cast<int64_t>(doc.size());
    width = std::max(width, len);
  }
  const auto b = static_cast<int64_t>(rows.size());
  PackedBatch out;
  out.ids = at::zeros({b, width}, at::kLong);
  out.mask = at::zeros({b, width}, at::kLong);
  out.positions = at::zeros({b, width}, at::kLong);
  out.segments = at::zeros({b, width}, at::kLong);
  for (int64_t r = 0; r < b; ++r) {
    int64_t col = 0, segment = 0;
    for (const auto& doc : rows[r]) {
      for (size_t p = 0; p < doc.size(); ++p, ++col) {
        out.ids[r][col] = doc[p];
        out.mask[r][col] = 1;
        out.positions[r][col] = static_cast<int64_t>(p);
        out.segments[r][col] = segment;
      }
      ++segment;
    }
    for (; col < width; ++col) out.segments[r][col] = segment - 1;
  }
  return out;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

::testing::AssertionResult same_logits(const at::Tensor& actual, const at::Tensor& reference, double abs_tol) {
  auto ref = reference.to(at::kDouble).contiguous();
  std::vector<double> values(ref.data_ptr<double>(), ref.data_ptr<double>() + ref.numel());
  return all_close(actual, values, abs_tol);
}

class DocumentMask : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    FUSELLM_REQUIRE_SHARED();
    dir_ = shared_dir() / GetParam();
    model_ = model::load_model(dir_);
    vocab_ = model_->config().vocab_size;
  }

  at::Tensor forward(const PackedBatch& batch, bool with_segments) {
    at::NoGradGuard no_grad;
    model::ForwardArgs args;
    args.input_ids = batch.ids;
    args.attention_mask = batch.mask;
    args.position_ids = batch.positions;
    if (with_segments) args.segment_ids = batch.segments;
    return model_->forward(args);
  }

  // Logits [len, vocab] of one document run alone (default positions, no mask, no segments).
  at::Tensor alone(const Document& doc) {
    at::NoGradGuard no_grad;
    model::ForwardArgs args;
    args.input_ids = at::tensor(doc, at::kLong).view({1, -1});
    return model_->forward(args)[0];
  }

  // Every document of every row has, at each of its positions, the logits it gets alone, with the model
  // in float64 and in float32. Returns the largest difference seen without segment ids (over documents
  // that are not first in their row).
  double check_against_alone(const std::vector<std::vector<Document>>& rows) {
    double leak = 0.0;
    for (auto dtype : {at::kDouble, at::kFloat}) {
      SCOPED_TRACE(c10::toString(dtype));
      model_->to(dtype, at::kCPU);
      leak = std::max(leak, check_against_alone(rows, dtype == at::kDouble ? kSameAbsFloat64 : kSameAbsFloat32));
    }
    return leak;
  }

  double check_against_alone(const std::vector<std::vector<Document>>& rows, double abs_tol) {
    PackedBatch batch = pack_rows(rows);
    at::Tensor masked = forward(batch, true);
    at::Tensor unmasked = forward(batch, false);
    double leak = 0.0;
    for (size_t r = 0; r < rows.size(); ++r) {
      int64_t col = 0;
      for (size_t d = 0; d < rows[r].size(); ++d) {
        const Document& doc = rows[r][d];
        const auto len = static_cast<int64_t>(doc.size());
        at::Tensor reference = alone(doc);
        EXPECT_TRUE(same_logits(masked[r].narrow(0, col, len), reference, abs_tol))
            << "row " << r << " document " << d << " (length " << len << ")";
        if (d > 0) leak = std::max(leak, max_abs_diff(unmasked[r].narrow(0, col, len), reference));
        col += len;
      }
    }
    return leak;
  }

  fs::path dir_;
  std::unique_ptr<model::CausalLM> model_;
  int64_t vocab_ = 0;
};

TEST_P(DocumentMask, ThreeDocumentsInOneRowMatchEachDocumentAlone) {
  // Lengths past mistral-swa8's window of 8, so the window and the segments both cut.
  std::vector<Document> docs = {random_document(9, vocab_, 1), random_document(13, vocab_, 2),
                                random_document(7, vocab_, 3)};
  const double leak = check_against_alone({docs});
  // Without segment ids the later documents see the earlier ones: the comparison above is not vacuous.
  EXPECT_GT(leak, 1e-3);
}

TEST_P(DocumentMask, TwoRowsWithDifferentSegmentationsAndRightPadding) {
  std::vector<std::vector<Document>> rows = {
      {random_document(6, vocab_, 11), random_document(12, vocab_, 12), random_document(10, vocab_, 13)},
      {random_document(11, vocab_, 21), random_document(5, vocab_, 22)},  // 16 real tokens + 12 padding
  };
  EXPECT_GT(check_against_alone(rows), 1e-3);
}

// The golden models, whose folders hold float64 reference logits at every real position.
class DocumentMaskGolden : public DocumentMask {};

TEST_P(DocumentMaskGolden, PackedGoldenDocumentsMatchTheFloat64Reference) {
  // The right-padded rows of the three golden cases (lengths 17, 11, 20) packed into one row.
  const json golden = parse_json_file(dir_ / "golden.json");
  io::SafetensorsFile full(dir_ / "logits_full.safetensors");
  std::vector<Document> docs;
  std::vector<at::Tensor> references;
  for (size_t ci = 0; ci < golden["cases"].size(); ++ci) {
    const auto& c = golden["cases"][ci];
    const auto len = c["lengths"][1].get<int64_t>();
    auto row = c["input_ids"][1].get<Document>();
    docs.emplace_back(row.begin(), row.begin() + len);
    references.push_back(full.load("case" + std::to_string(ci) + ".seq1").to(at::kDouble));
  }
  at::Tensor logits = forward(pack_rows({docs}), true)[0];
  int64_t col = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    const auto len = static_cast<int64_t>(docs[d].size());
    const at::Tensor& ref = references[d];
    ASSERT_EQ(ref.size(0), len);
    std::vector<double> ref_values(ref.data_ptr<double>(), ref.data_ptr<double>() + ref.numel());
    EXPECT_TRUE(all_close(logits.narrow(0, col, len), ref_values, kLogitAbs, kLogitRel)) << "document " << d;
    col += len;
  }
}

std::string model_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param.substr(info.param.rfind('/') + 1);
  std::replace_if(name.begin(), name.end(), [](char ch) { return !std::isalnum(ch); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Families, DocumentMask,
                         ::testing::Values("data/models/stories260K-hf", "golden/models/mpt-tiny",
                                           "golden/models/gpt_neox-tiny", "golden/models/mistral-swa8"),
                         model_name);
INSTANTIATE_TEST_SUITE_P(Families, DocumentMaskGolden,
                         ::testing::Values("golden/models/mpt-tiny", "golden/models/gpt_neox-tiny",
                                           "golden/models/mistral-swa8"),
                         model_name);

// The real model: the "Once upon a time" prompt packed behind another document still gives llama2.c's
// reference logits and argmax at its positions.
TEST(DocumentMaskStories260K, PromptBehindAnotherDocumentMatchesLlama2cReference) {
  FUSELLM_REQUIRE_SHARED();
  const auto models = shared_dir() / "data" / "models";
  const json reference = parse_json_file(models / "stories260K" / "stories260K_reference_outputs.json");
  auto lm = model::load_model(models / "stories260K-hf");
  const auto prompt = reference["prompt_case"]["token_ids_with_bos"].get<Document>();
  const auto argmax = reference["prompt_case"]["argmax_per_position"].get<std::vector<int64_t>>();
  const Document before = random_document(15, lm->config().vocab_size, 99);
  PackedBatch batch = pack_rows({{before, prompt}});
  at::NoGradGuard no_grad;
  model::ForwardArgs args;
  args.input_ids = batch.ids;
  args.position_ids = batch.positions;
  args.segment_ids = batch.segments;
  at::Tensor logits = lm->forward(args)[0].narrow(0, static_cast<int64_t>(before.size()),
                                                  static_cast<int64_t>(prompt.size()));
  EXPECT_TRUE(all_close(logits[-1], doubles(reference["prompt_case"]["last_position_logits"]), 1e-4));
  for (size_t t = 0; t < argmax.size(); ++t)
    EXPECT_EQ(logits[static_cast<int64_t>(t)].argmax().item<int64_t>(), argmax[t]) << "position " << t;
}

TEST(DocumentMaskErrors, SegmentIdsAreValidated) {
  FUSELLM_REQUIRE_SHARED();
  auto lm = model::load_model(shared_dir() / "golden" / "models" / "mpt-tiny");
  at::NoGradGuard no_grad;
  model::ForwardArgs args;
  args.input_ids = at::ones({1, 4}, at::kLong);
  args.segment_ids = at::zeros({1, 3}, at::kLong);
  EXPECT_THROW(lm->forward(args), Error);  // shape differs from input_ids
  args.segment_ids = at::zeros({1, 4}, at::kFloat);
  EXPECT_THROW(lm->forward(args), Error);  // not integer
  args.segment_ids = at::zeros({1, 4}, at::kInt);
  EXPECT_NO_THROW(lm->forward(args));      // int32 is converted
  model::KVCache cache;
  args.cache = &cache;
  EXPECT_THROW(lm->forward(args), Error);  // packed documents have no KV cache
}

}  // namespace
}  // namespace fusellm::test
