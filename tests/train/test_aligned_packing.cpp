// Fusion training with packed aligned chunks (train.pack_chunks): the greedy packing (checked by its defining
// properties, not by re-running the algorithm), one visit of every chunk per epoch, the batch tensors at each
// chunk's offset against the values the synthetic store was written from, per-position chunk CE, no fusion
// mass at a chunk's last position, the fused target of a packed chunk equal to the same chunk fused alone,
// the fusion term of a packed row (document mask + restarted positions) equal to its chunks' unpacked one,
// and a packed training run whose loss falls.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <set>

#include "fusellm/model/causal_lm.hpp"
#include "fusellm/train/aligned_source.hpp"
#include "fusellm/train/train_config.hpp"
#include "train/aligned_test_store.hpp"
#include "train/train_test_util.hpp"

namespace fusellm::train {
namespace {

constexpr int64_t kMaxLength = 32;
using Chunks = std::vector<std::vector<int64_t>>;

// Shakespeare paragraphs cut to lengths 3..19 in a fixed pattern, so packing puts 2 or 3 chunks in a row.
Chunks chunks_for_test() {
  Chunks chunks;
  for (auto& doc : test::shakespeare_documents(20000)) {
    const size_t want = 3 + (chunks.size() * 5) % 17;
    if (doc.size() < want) continue;
    doc.resize(want);
    chunks.push_back(doc);
    if (chunks.size() == 20) break;
  }
  return chunks;
}

// minCE picks the noise source for every third chunk and the teacher elsewhere; position CEs differ per
// chunk and per position so a value at a wrong offset shows.
float noise_chunk_ce(size_t c) { return c % 3 == 0 ? 0.2f : 3.0f + 0.1f * float(c); }
// (The store keeps position CEs in half precision: values are compared to within its rounding, 1e-3 here.)
float teacher_position_ce(size_t c, size_t t) { return 1.0f + 0.071f * float(c) + 0.011f * float(t); }
float noise_position_ce(size_t c, size_t t) { return 2.5f - 0.037f * float(c) + 0.013f * float(t); }

std::shared_ptr<const align::AlignedStoreReader> store_for(const std::string& name, const Chunks& chunks) {
  return test::build_aligned_store(test::scratch_dir(name) / "aligned", chunks, noise_chunk_ce, teacher_position_ce,
                                   noise_position_ce);
}

AlignedSourceOptions packed_options(bool restart_positions, bool document_mask, uint64_t seed = 5) {
  return AlignedSourceOptions{kMaxLength, seed, /*pack=*/true, restart_positions, document_mask};
}

int64_t length_of(const Chunks& chunks, const std::vector<int64_t>& ids) {
  int64_t n = 0;
  for (int64_t c : ids) n += int64_t(chunks[size_t(c)].size());
  return n;
}

TEST(AlignedPacking, GreedyRunsOfWholeChunksEachVisitedOncePerEpoch) {
  FUSELLM_REQUIRE_SHARED();
  const Chunks chunks = chunks_for_test();
  ASSERT_EQ(chunks.size(), 20u);
  const auto store = store_for("aligned_packing_layout", chunks);
  AlignedBatchSource source(store, packed_options(false, false));
  const int64_t n = source.num_sequences();
  ASSERT_EQ(source.num_chunks(), 20);
  ASSERT_LT(n, 20);  // something was packed

  // Consecutive runs in chunk-id order covering every chunk once, none longer than max_length, and each
  // maximal (its next chunk does not fit): exactly the greedy packing.
  std::vector<int64_t> concatenated;
  size_t most_chunks = 0;
  for (int64_t s = 0; s < n; ++s) {
    const auto ids = source.chunks_of(s);
    ASSERT_FALSE(ids.empty()) << s;
    concatenated.insert(concatenated.end(), ids.begin(), ids.end());
    most_chunks = std::max(most_chunks, ids.size());
    EXPECT_LE(length_of(chunks, ids), kMaxLength) << s;
    if (s + 1 < n)
      EXPECT_GT(length_of(chunks, ids) + int64_t(chunks[size_t(ids.back() + 1)].size()), kMaxLength) << s;
  }
  std::vector<int64_t> all(20);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(concatenated, all);
  EXPECT_GE(most_chunks, 3u);

  // The composition is a function of the store and max_length only (not of the seed; the world size does not
  // enter at all), so every process and every epoch agree on it.
  AlignedBatchSource other_seed(store, packed_options(true, true, 99));
  ASSERT_EQ(other_seed.num_sequences(), n);
  for (int64_t s = 0; s < n; ++s) EXPECT_EQ(other_seed.chunks_of(s), source.chunks_of(s));

  // An epoch with global batch 1 visits every sequence once, hence every chunk once; then epoch 1 starts.
  std::multiset<int64_t> seen_chunks;
  std::vector<int64_t> order;
  for (int64_t step = 0; step < n; ++step) {
    const auto ids = source.next_global_batch(1);
    ASSERT_EQ(ids.size(), 1u);
    order.push_back(ids[0]);
    for (int64_t c : source.chunks_of(ids[0])) seen_chunks.insert(c);
    EXPECT_EQ(source.epoch(), 0);
  }
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), size_t(n));
  EXPECT_EQ(std::vector<int64_t>(seen_chunks.begin(), seen_chunks.end()), all);
  std::vector<int64_t> identity(size_t(n), 0);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(order, identity);  // shuffled (sequences, not chunks, are the unit)
  source.next_global_batch(1);
  EXPECT_EQ(source.epoch(), 1);

  // Without packing chunk c is sequence c.
  AlignedBatchSource unpacked(store, AlignedSourceOptions{kMaxLength, 5, /*pack=*/false});
  ASSERT_EQ(unpacked.num_sequences(), 20);
  for (int64_t c = 0; c < 20; ++c) EXPECT_EQ(unpacked.chunks_of(c), std::vector<int64_t>{c});
  // A chunk longer than max_length is refused.
  EXPECT_THROW(AlignedBatchSource(store, AlignedSourceOptions{16, 5, true}), Error);
}

TEST(AlignedPacking, BatchTensorsSitAtEachChunksOffset) {
  FUSELLM_REQUIRE_SHARED();
  const Chunks chunks = chunks_for_test();
  const auto store = store_for("aligned_packing_tensors", chunks);
  AlignedBatchSource packed(store, packed_options(true, true));
  AlignedBatchSource unpacked(store, AlignedSourceOptions{kMaxLength, 5, /*pack=*/false});
  const int64_t k = test::kAlignedSlots;
  int64_t rows_checked = 0, boundaries = 0;
  for (int64_t first = 0; first < packed.num_sequences(); first += 3) {
    std::vector<int64_t> seqs;
    for (int64_t s = first; s < std::min(first + 3, packed.num_sequences()); ++s) seqs.push_back(s);
    const TrainBatch batch = packed.make_batch(seqs);
    const int64_t T = batch.input_ids.size(1);
    ASSERT_LE(T, kMaxLength);
    ASSERT_TRUE(batch.position_ids.defined() && batch.segment_ids.defined());
    ASSERT_EQ(batch.chunk_ids.size(), seqs.size());
    const auto sources = aligned_source_batches(*store, batch);
    ASSERT_EQ(sources.size(), 2u);
    const at::Tensor positions = fusion_positions(*store, batch);
    std::vector<fusion::SparseDist> fused;
    for (auto strategy : {fusion::Strategy::MinCE, fusion::Strategy::AvgCE, fusion::Strategy::TokenMinCE})
      fused.push_back(fusion::fuse(sources, strategy, 1.0));
    for (size_t r = 0; r < seqs.size(); ++r) {
      const auto ids = packed.chunks_of(seqs[r]);
      ASSERT_EQ(batch.chunk_ids[r], ids);
      int64_t offset = 0;
      for (size_t j = 0; j < ids.size(); ++j) {
        const size_t c = size_t(ids[j]);
        const auto& chunk = chunks[c];
        const int64_t n = int64_t(chunk.size());
        for (int64_t p = 0; p < n; ++p) {
          const int64_t at = offset + p;
          const bool last = p + 1 == n;
          ASSERT_EQ(batch.input_ids[int64_t(r)][at].item<int64_t>(), chunk[size_t(p)]) << c << " " << p;
          EXPECT_EQ(batch.labels[int64_t(r)][at].item<int64_t>(), chunk[size_t(p)]);
          EXPECT_EQ(batch.position_ids[int64_t(r)][at].item<int64_t>(), p);
          EXPECT_EQ(batch.segment_ids[int64_t(r)][at].item<int64_t>(), int64_t(j));
          EXPECT_EQ(positions[int64_t(r)][at].item<bool>(), !last) << c << " " << p;
          // Per-position chunk CE, and the position CE (0 at the chunk's last position).
          EXPECT_FLOAT_EQ(sources[0].seq_ce[int64_t(r)][at].item<float>(), 0.5f);
          EXPECT_FLOAT_EQ(sources[1].seq_ce[int64_t(r)][at].item<float>(), noise_chunk_ce(c));
          EXPECT_NEAR(sources[0].token_ce[int64_t(r)][at].item<float>(), last ? 0 : teacher_position_ce(c, size_t(p)),
                      1.5e-3);
          EXPECT_NEAR(sources[1].token_ce[int64_t(r)][at].item<float>(), last ? 0 : noise_position_ce(c, size_t(p)),
                      1.5e-3);
          for (int64_t i = 0; i < k; ++i) {
            const int64_t teacher = !last && i == 0 ? chunk[size_t(p + 1)] : -1;
            const int64_t noise = last ? -1 : test::noise_id(size_t(p), uint32_t(i));
            EXPECT_EQ(sources[0].ids[int64_t(r)][at][i].item<int64_t>(), teacher) << c << " " << p << " " << i;
            EXPECT_EQ(sources[1].ids[int64_t(r)][at][i].item<int64_t>(), noise) << c << " " << p << " " << i;
            EXPECT_FLOAT_EQ(sources[1].vals[int64_t(r)][at][i].item<float>(), last ? 0.0f : 1.0f - 0.5f * float(i));
          }
          // No fusion mass at a chunk's last position (its next token is the next chunk's), mass elsewhere.
          for (const auto& f : fused) {
            const double mass = f.probs[int64_t(r)][at].sum().item<double>();
            if (last) EXPECT_EQ(mass, 0.0) << c;
            else EXPECT_GT(mass, 0.99) << c << " " << p;
          }
        }
        // The chunk's fused target in the packed row equals the chunk fused alone (unpacked, [B] seq_ce).
        const TrainBatch alone = unpacked.make_batch({int64_t(c)});
        const auto alone_sources = aligned_source_batches(*store, alone);
        ASSERT_EQ(alone_sources[0].seq_ce.dim(), 1);
        size_t strategy_index = 0;
        for (auto strategy : {fusion::Strategy::MinCE, fusion::Strategy::AvgCE, fusion::Strategy::TokenMinCE}) {
          const auto expect = fusion::fuse(alone_sources, strategy, 1.0);
          const auto& got = fused[strategy_index++];
          EXPECT_TRUE(got.ids[int64_t(r)].narrow(0, offset, n).equal(expect.ids[0])) << c;
          EXPECT_TRUE(got.probs[int64_t(r)].narrow(0, offset, n).allclose(expect.probs[0], 0, 1e-7)) << c;
        }
        if (j > 0) ++boundaries;
        offset += n;
      }
      // Right padding: no label, padding continues the last chunk's segment, no fusion position.
      for (int64_t at = offset; at < T; ++at) {
        EXPECT_EQ(batch.labels[int64_t(r)][at].item<int64_t>(), -100);
        EXPECT_EQ(batch.segment_ids[int64_t(r)][at].item<int64_t>(), int64_t(ids.size()) - 1);
        EXPECT_FALSE(positions[int64_t(r)][at].item<bool>());
        EXPECT_EQ(sources[1].ids[int64_t(r)][at].ge(0).sum().item<int64_t>(), 0);
      }
      ++rows_checked;
    }
  }
  EXPECT_EQ(rows_checked, packed.num_sequences());
  EXPECT_GE(boundaries, 5);
  // minCE really chooses per chunk: the noise for chunks 0, 3, 6, …, the teacher elsewhere.
  const TrainBatch first = packed.make_batch({0});
  const auto w = fusion::strategy_weights(aligned_source_batches(*store, first), fusion::Strategy::MinCE);
  EXPECT_EQ(w[0][0][1].item<float>(), 1.0f);                    // chunk 0
  EXPECT_EQ(w[0][int64_t(chunks[0].size())][0].item<float>(), 1.0f);  // chunk 1

  // Without restart_positions / document_mask the batch carries neither.
  AlignedBatchSource plain(store, packed_options(false, false));
  const TrainBatch b = plain.make_batch({0, 1});
  EXPECT_FALSE(b.position_ids.defined());
  EXPECT_FALSE(b.segment_ids.defined());
}

// With document_mask and restart_positions every chunk of a packed row sees only itself at positions
// 0..n−1, as it does alone; the fusion term is a mean over the same positions: packed = unpacked.
TEST(AlignedPacking, PackedFusionTermEqualsUnpacked) {
  FUSELLM_REQUIRE_SHARED();
  const Chunks chunks = chunks_for_test();
  const auto store = store_for("aligned_packing_loss", chunks);
  AlignedBatchSource packed(store, packed_options(true, true));
  AlignedBatchSource unpacked(store, AlignedSourceOptions{kMaxLength, 5, /*pack=*/false});
  int64_t widest = 0;
  for (int64_t s = 0; s < packed.num_sequences(); ++s)
    if (packed.chunks_of(s).size() > packed.chunks_of(widest).size()) widest = s;
  const auto ids = packed.chunks_of(widest);
  ASSERT_GE(ids.size(), 3u);
  // float64: packed and per-chunk forwards differ only in rounding order (~1e-14 here on any CPU; float32's
  // ~1e-6 depends on the BLAS kernels).
  io::LoadOptions load;
  load.dtype = at::kDouble;
  auto model = model::load_model(test::stories_dir(), load);
  at::NoGradGuard no_grad;
  auto run = [&](const TrainBatch& batch, fusion::Strategy strategy) {
    model::ForwardArgs args;
    args.input_ids = batch.input_ids;
    if (batch.position_ids.defined()) args.position_ids = batch.position_ids;
    if (batch.segment_ids.defined()) args.segment_ids = batch.segment_ids;
    FusionSettings settings;
    settings.strategy = strategy;
    settings.lambda = 0.5;
    return make_fusion_loss(store, settings)(*model, model->forward_hidden(args), batch);
  };
  for (auto strategy : {fusion::Strategy::MinCE, fusion::Strategy::AvgCE, fusion::Strategy::TokenMinCE}) {
    const LossParts p = run(packed.make_batch({widest}), strategy);
    const LossParts u = run(unpacked.make_batch(ids), strategy);
    EXPECT_GT(u.fusion, 0);
    EXPECT_NEAR(p.fusion, u.fusion, 1e-10 * u.fusion) << fusion::to_string(strategy);
  }
}

TEST(AlignedPacking, PackedTrainingLossFalls) {
  FUSELLM_REQUIRE_SHARED();
  const Chunks chunks = chunks_for_test();
  const auto store = store_for("aligned_packing_train", chunks);
  TrainConfig c = test::small_train_config(test::scratch_dir("aligned_packing_train") / "out");
  c.max_steps = 12;
  c.max_length = kMaxLength;
  c.restart_positions = true;
  c.document_mask = true;
  c.pack_chunks = true;
  fs::remove_all(c.output_dir);
  FusionSettings settings;
  settings.lambda = 0.9;
  auto source = std::make_unique<AlignedBatchSource>(
      store, AlignedSourceOptions{c.max_length, c.seed, c.pack_chunks, c.restart_positions, c.document_mask});
  ASSERT_GE(source->num_sequences(), c.global_batch(1));
  const auto metrics = test::stories_trainer(c, std::move(source), make_fusion_loss(store, settings))->run();
  ASSERT_EQ(metrics.size(), 12u);
  for (const auto& m : metrics) {
    EXPECT_TRUE(std::isfinite(m.loss) && std::isfinite(m.fusion) && m.fusion > 0) << m.step;
    EXPECT_NEAR(m.loss, 0.9 * m.clm + 0.1 * m.fusion, 1e-3 * std::abs(m.loss)) << m.step;
  }
  const double first = (metrics[0].loss + metrics[1].loss) / 2, last = (metrics[10].loss + metrics[11].loss) / 2;
  EXPECT_LT(last, first);
  EXPECT_LT(metrics[11].fusion, metrics[0].fusion);
}

TEST(AlignedPacking, ConfigKeyPackChunks) {
  EXPECT_TRUE(parse_train_config(json::object(), "exp.json", "/cfg", "exp").pack_chunks);
  const TrainConfig off = parse_train_config(json{{"pack_chunks", false}}, "exp.json", "/cfg", "exp");
  EXPECT_FALSE(off.pack_chunks);
  EXPECT_EQ(off.to_json().at("pack_chunks"), false);
  try {
    parse_train_config(json{{"pack_chunks", "yes"}}, "exp.json", "/cfg", "exp");
    FAIL() << "a string accepted for train.pack_chunks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.pack_chunks"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fusellm::train
