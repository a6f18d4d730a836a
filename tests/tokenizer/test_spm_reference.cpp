// The native SentencePiece reader against libsentencepiece (the reference implementation), on real
// models (Llama-2, tok512) and on small models trained here to cover Unigram, user-defined symbols,
// UNUSED pieces and whitespace options. libsentencepiece is linked into this torch-free test only.
#ifdef FUSELLM_HAVE_SPM_REFERENCE
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <set>

#include "fusellm/tokenizer/sentencepiece.hpp"
#include "spm_test_util.hpp"

using namespace fusellm;
using fusellm::tok::SentencePieceTokenizer;

namespace {

std::unique_ptr<sentencepiece::SentencePieceProcessor> load_reference(const fs::path& model) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto status = sp->Load(model.string());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return sp;
}

// What Hugging Face's LlamaTokenizer produces, built from libsentencepiece: HF first splits out the text
// of special tokens (the CONTROL and UNKNOWN pieces, leftmost-longest) and runs sentencepiece on each
// remaining segment separately; raw sentencepiece would instead tokenize "<unk>" as "<", "unk", ">".
// Offsets: sentencepiece's, shifted by the segment's start.
using SpecialTexts = std::vector<std::pair<std::string, int>>;

SpecialTexts special_texts(const sentencepiece::SentencePieceProcessor& sp) {
  SpecialTexts specials;
  for (int id = 0; id < sp.GetPieceSize(); ++id)
    if (sp.IsControl(id) || sp.IsUnknown(id)) specials.emplace_back(sp.IdToPiece(id), id);
  std::stable_sort(specials.begin(), specials.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
  return specials;
}

tok::Encoding reference_encode(const sentencepiece::SentencePieceProcessor& sp, const SpecialTexts& specials,
                               const std::string& text) {
  tok::Encoding out;
  auto encode_segment = [&](size_t begin, size_t end) {
    if (end == begin) return;
    auto spt = sp.EncodeAsImmutableProto(text.substr(begin, end - begin));
    for (const auto& piece : spt.pieces()) {
      out.ids.push_back(static_cast<int32_t>(piece.id()));
      out.offsets.emplace_back(begin + piece.begin(), begin + piece.end());
    }
  };
  size_t segment = 0;
  for (size_t pos = 0; pos < text.size();) {
    auto hit = std::find_if(specials.begin(), specials.end(),
                            [&](auto& s) { return text.compare(pos, s.first.size(), s.first) == 0; });
    if (hit == specials.end()) {
      ++pos;
      continue;
    }
    encode_segment(segment, pos);
    out.ids.push_back(hit->second);
    out.offsets.emplace_back(pos, pos + hit->first.size());
    pos += hit->first.size();
    segment = pos;
  }
  encode_segment(segment, text.size());
  return out;
}

std::vector<std::string> all_texts() {
  std::vector<std::string> texts = test::edge_texts();
  for (const auto& t : test::llama_fixture().texts) texts.push_back(t.text);
  return texts;
}

void expect_same_as_reference(const fs::path& model, const std::vector<std::string>& texts, size_t min_texts) {
  auto sp = load_reference(model);
  auto ours = SentencePieceTokenizer::from_file(model);
  ASSERT_GE(texts.size(), min_texts);
  size_t mismatches = 0;
  const SpecialTexts specials = special_texts(*sp);
  for (const auto& text : texts) {
    const tok::Encoding expected = reference_encode(*sp, specials, text);
    const tok::Encoding got = ours->encode(text, /*add_special_tokens=*/false);
    if (got.ids != expected.ids || got.offsets != expected.offsets) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << model << ": text " << testing::PrintToString(text.substr(0, 200))
                      << "\n ids    " << testing::PrintToString(got.ids)
                      << "\n expect " << testing::PrintToString(expected.ids)
                      << "\n offsets " << testing::PrintToString(got.offsets)
                      << "\n expect  " << testing::PrintToString(expected.offsets);
      }
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << texts.size() << " texts";
}

// Pieces, scores and types of every id, as libsentencepiece reports them (HF's convert_ids_to_tokens
// for a sentencepiece tokenizer is IdToPiece).
void expect_same_vocabulary(const fs::path& model) {
  auto sp = load_reference(model);
  auto ours = SentencePieceTokenizer::from_file(model);
  ASSERT_EQ(ours->vocab_size(), static_cast<size_t>(sp->GetPieceSize()));
  for (int id = 0; id < sp->GetPieceSize(); ++id) {
    ASSERT_EQ(ours->id_to_token(id), sp->IdToPiece(id)) << "id " << id;
    ASSERT_EQ(ours->model().pieces[id].score, sp->GetScore(id)) << "id " << id;
    ASSERT_EQ(ours->token_to_id(sp->IdToPiece(id)), id);
    const auto type = ours->model().pieces[id].type;
    ASSERT_EQ(type == tok::SpmPieceType::Control, sp->IsControl(id)) << "id " << id;
    ASSERT_EQ(type == tok::SpmPieceType::Unknown, sp->IsUnknown(id)) << "id " << id;
    ASSERT_EQ(type == tok::SpmPieceType::Byte, sp->IsByte(id)) << "id " << id;
    ASSERT_EQ(type == tok::SpmPieceType::Unused, sp->IsUnused(id)) << "id " << id;
  }
  EXPECT_EQ(ours->special_tokens().bos.value_or(-1), sp->bos_id());
  EXPECT_EQ(ours->special_tokens().eos.value_or(-1), sp->eos_id());
  EXPECT_EQ(ours->special_tokens().pad.value_or(-1), sp->pad_id());
  EXPECT_EQ(ours->special_tokens().unk.value_or(-1), sp->unk_id());
}

// A small model trained by libsentencepiece on Shakespeare, for the code paths the shipped models lack.
fs::path train_model(const std::string& name, const std::string& options) {
  static const fs::path dir = test::scratch_dir("spm_trained");
  const fs::path corpus = dir / "corpus.txt";
  if (!fs::exists(corpus)) {
    std::string text = read_file(test::shared_dir() / "data/corpus/tinyshakespeare.txt").substr(0, 200000);
    write_file_atomic(corpus, text);
  }
  const fs::path prefix = dir / name;
  auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + corpus.string() + " --model_prefix=" + prefix.string() +
      " --normalization_rule_name=identity --minloglevel=2 --num_threads=2 " + options);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return prefix.string() + ".model";
}

std::vector<std::string> trained_model_texts() {
  std::vector<std::string> texts = test::edge_texts();
  const auto& fixture = test::llama_fixture().texts;
  for (size_t i = 0; i < fixture.size(); i += 4) texts.push_back(fixture[i].text);
  texts.push_back("QQQ and WWW and QQQWWW inside words: xQQQx");
  texts.push_back("  double  spaces  and ^^ user ^^^ symbols ");
  return texts;
}

// Rewrites a serialized ModelProto so that the pieces with the given ids become UNUSED (type 5): no
// trainer emits those, but sentencepiece's BPE re-splits merges that produce one, and Unigram skips them.
// A minimal protobuf walk: top-level field 1 (pieces) is rebuilt, everything else copied byte for byte.
std::string mark_unused(const std::string& model, const std::set<int>& ids) {
  auto read_varint = [](const std::string& s, size_t& pos) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      uint8_t b = static_cast<uint8_t>(s.at(pos++));
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  auto write_varint = [](std::string& out, uint64_t v) {
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      out.push_back(static_cast<char>(b | (v ? 0x80 : 0)));
    } while (v);
  };
  std::string out;
  int piece_index = 0;
  for (size_t pos = 0; pos < model.size();) {
    const size_t field_start = pos;
    const uint64_t key = read_varint(model, pos);
    const int wire = key & 7;
    if (wire == 0) read_varint(model, pos);
    else if (wire == 1) pos += 8;
    else if (wire == 5) pos += 4;
    else pos += read_varint(model, pos);  // wire 2: skip the payload
    const bool is_piece = (key >> 3) == 1;
    if (!is_piece || !ids.count(piece_index++)) {
      out.append(model, field_start, pos - field_start);
      continue;
    }
    // Piece: keep fields 1 (piece) and 2 (score), then type = UNUSED.
    size_t p = field_start;
    read_varint(model, p);
    const size_t len = read_varint(model, p);
    const std::string body = model.substr(p, len);
    std::string rebuilt;
    for (size_t q = 0; q < body.size();) {
      const size_t f = q;
      const uint64_t k = read_varint(body, q);
      if ((k & 7) == 0) read_varint(body, q);
      else if ((k & 7) == 5) q += 4;
      else if ((k & 7) == 1) q += 8;
      else q += read_varint(body, q);
      if ((k >> 3) != 3) rebuilt.append(body, f, q - f);
    }
    rebuilt += std::string("\x18\x05", 2);
    out.push_back(0x0A);
    write_varint(out, rebuilt.size());
    out += rebuilt;
  }
  return out;
}

void expect_unused_pieces_handled(const fs::path& trained) {
  const std::string original = read_file(trained);
  auto plain = SentencePieceTokenizer::from_file(trained);
  std::set<int> ids;  // every 7th multi-character NORMAL piece
  for (size_t id = 0; id < plain->vocab_size(); ++id) {
    const auto& p = plain->model().pieces[id];
    if (p.type == tok::SpmPieceType::Normal && p.piece.size() >= 3 && id % 7 == 0) ids.insert(static_cast<int>(id));
  }
  ASSERT_GT(ids.size(), 10u);
  const std::string modified = mark_unused(original, ids);
  const fs::path path = trained.parent_path() / (trained.stem().string() + "_unused.model");
  write_file_atomic(path, modified);
  auto ours = SentencePieceTokenizer::from_file(path);
  size_t unused = 0;
  for (const auto& p : ours->model().pieces) unused += p.type == tok::SpmPieceType::Unused;
  ASSERT_EQ(unused, ids.size());
  expect_same_vocabulary(path);
  expect_same_as_reference(path, trained_model_texts(), 200);
}

}  // namespace

TEST(SentencePieceReference, Llama2VocabularyMatchesLibsentencepiece) {
  FUSELLM_REQUIRE_SHARED();
  expect_same_vocabulary(test::llama2_model());
}

TEST(SentencePieceReference, Tok512VocabularyMatchesLibsentencepiece) {
  FUSELLM_REQUIRE_SHARED();
  expect_same_vocabulary(test::tok512_model());
}

TEST(SentencePieceReference, Llama2IdsAndOffsetsMatchOnRealTexts) {
  FUSELLM_REQUIRE_SHARED();
  expect_same_as_reference(test::llama2_model(), all_texts(), 1000);
}

// tok512 keeps sentencepiece's default remove_extra_whitespaces=true (as HF's slow LlamaTokenizer, which
// runs sentencepiece itself, does).
TEST(SentencePieceReference, Tok512IdsAndOffsetsMatchOnRealTexts) {
  FUSELLM_REQUIRE_SHARED();
  expect_same_as_reference(test::tok512_model(), all_texts(), 1000);
}

TEST(SentencePieceReference, TrainedUnigramWithUserSymbolsMatches) {
  FUSELLM_REQUIRE_SHARED();
  auto model = train_model("unigram", "--model_type=unigram --vocab_size=400 --user_defined_symbols=QQQ,WWW,^^");
  expect_same_vocabulary(model);
  expect_same_as_reference(model, trained_model_texts(), 200);
}

TEST(SentencePieceReference, TrainedUnigramByteFallbackMatches) {
  FUSELLM_REQUIRE_SHARED();
  auto model = train_model("unigram_bytes",
                           "--model_type=unigram --vocab_size=600 --byte_fallback=true --add_dummy_prefix=false "
                           "--remove_extra_whitespaces=false");
  expect_same_vocabulary(model);
  expect_same_as_reference(model, trained_model_texts(), 200);
}

TEST(SentencePieceReference, TrainedBpeWithUserSymbolsMatches) {
  FUSELLM_REQUIRE_SHARED();
  auto model = train_model("bpe", "--model_type=bpe --vocab_size=400 --user_defined_symbols=QQQ,WWW,^^ "
                                  "--control_symbols=<ctl> --pad_id=3 --unk_id=1 --bos_id=2 --eos_id=-1");
  expect_same_vocabulary(model);
  expect_same_as_reference(model, trained_model_texts(), 200);
}
#endif  // FUSELLM_HAVE_SPM_REFERENCE

#ifdef FUSELLM_HAVE_SPM_REFERENCE
TEST(SentencePieceReference, UnusedPiecesInBpeAndUnigram) {
  FUSELLM_REQUIRE_SHARED();
  expect_unused_pieces_handled(train_model("bpe_for_unused", "--model_type=bpe --vocab_size=400"));
  expect_unused_pieces_handled(train_model("unigram_for_unused", "--model_type=unigram --vocab_size=400"));
}
#endif
