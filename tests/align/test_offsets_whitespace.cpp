// Alignment by offsets on the bytes each token really covers, for texts full of whitespace: runs of spaces,
// tabs, newlines followed by spaces, leading and trailing spaces, zero-width characters. For every ordered
// pair of Llama-2, GPT-NeoX, GPT-2 and tok512: each side's spans tile the text, every 1:1 pair covers the same
// bytes, and every group of target tokens maps to source tokens covering exactly the same bytes. Also the
// 1:1 and fallback rates on the golden align texts with HF's trimmed offsets (what align used before) and
// with the untrimmed ones (what it uses now).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>

#include "fusellm/align/alignment.hpp"
#include "fusellm/align/canonical.hpp"
#include "fusellm/align/project.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "golden.hpp"

namespace fusellm::align {
namespace {

const std::vector<std::string>& whitespace_texts() {
  static const std::vector<std::string> texts = {
      "\u200bzwsp,  \n ",  // the reported case: zero-width space, two spaces, newline + space
      "  two leading spaces and three trailing   ",
      " one leading space",
      "tabs\t\tand\t mixed \t\n\tindent\t",
      "line one\n  line two\n\n\n   line three \n",
      "code:\n    def f(x):\n        return x  # two spaces\n\n",
      "\n\n \n\t\n  ",
      " ",
      "\n",
      "zero\u200bwidth\u200c non\u200djoiner and\ufeff BOM \u200b ",
      "non-breaking\u00a0space and ideographic\u3000space",
      "CRLF\r\nline\r\n  end\r\n",
      "multi   space    runs     of      growing       length        here",
      "emoji \U0001F642  and  accents caf\u00e9 na\u00efve \u00fcber",
      "word\n word\n\tword\n \tword \n",
  };
  return texts;
}

struct Tokenizers {
  std::map<std::string, std::unique_ptr<tok::Tokenizer>> by_name;
};

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    Tokenizers t;
    const auto dir = test::shared_dir() / "data";
    t.by_name["llama2"] = tok::load_tokenizer(dir / "tokenizers/llama2/tokenizer.model");
    t.by_name["neox"] = tok::load_tokenizer(dir / "tokenizers/gpt-neox-20b/20B_tokenizer.json");
    // GPT-2's files as HF names them (vocab.json + merges.txt), linked into a scratch directory.
    const fs::path gpt2 = test::scratch_dir("offsets_whitespace_gpt2");
    fs::create_symlink(dir / "tokenizers/gpt2/gpt2_vocab.json", gpt2 / "vocab.json");
    fs::create_symlink(dir / "tokenizers/gpt2/gpt2_merges.txt", gpt2 / "merges.txt");
    t.by_name["gpt2"] = tok::load_tokenizer(gpt2);
    t.by_name["tok512"] = tok::load_tokenizer(dir / "models/stories260K/tok512.model");
    return t;
  }();
  return t;
}

std::vector<ByteSpan> spans_of(const tok::Encoding& e) { return {e.offsets.begin(), e.offsets.end()}; }

size_t utf8_length(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// Non-empty spans tile [0, text.size()) in order; an empty span sits where the covered prefix ends; spans
// overlap only inside one character (byte-level or byte-fallback tokens splitting it share its span).
testing::AssertionResult tiles(const std::vector<ByteSpan>& spans, const std::string& text) {
  // tok512 (remove_extra_whitespaces) turns a whitespace-only text into no tokens at all: nothing to tile.
  if (spans.empty()) return testing::AssertionSuccess();
  uint32_t covered = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto [b, e] = spans[i];
    if (b > e || e > text.size()) return testing::AssertionFailure() << "token " << i << " span [" << b << "," << e << ")";
    // Inside the last character: only at its start (a token splitting it), never elsewhere.
    const bool at_char_start_before = b < covered && b + utf8_length(static_cast<unsigned char>(text[b])) == covered;
    if (b == e) {
      if (b != covered && !at_char_start_before)
        return testing::AssertionFailure() << "empty token " << i << " at " << b << ", covered " << covered;
      continue;
    }
    if (b > covered) return testing::AssertionFailure() << "gap [" << covered << "," << b << ") before token " << i;
    if (b < covered) {
      if (!at_char_start_before || e < covered)
        return testing::AssertionFailure() << "token " << i << " [" << b << "," << e << ") overlaps more than one "
                                           << "character before " << covered;
    }
    covered = std::max(covered, e);
  }
  if (covered != text.size()) return testing::AssertionFailure() << "covers " << covered << " of " << text.size() << " bytes";
  return testing::AssertionSuccess();
}

// The bytes a set of tokens covers: [min begin, max end) of its non-empty spans; {0, 0} when all are empty.
ByteSpan cover(const std::vector<ByteSpan>& spans, Span range) {
  ByteSpan c{UINT32_MAX, 0};
  for (int32_t i = range.begin; i < range.end; ++i)
    if (spans[size_t(i)].first < spans[size_t(i)].second) {
      c.first = std::min(c.first, spans[size_t(i)].first);
      c.second = std::max(c.second, spans[size_t(i)].second);
    }
  return c.first == UINT32_MAX ? ByteSpan{0, 0} : c;
}

// The three promises of alignment by offsets, checked on one aligned pair. Returns the 1:1 count.
size_t check_alignment(const std::vector<ByteSpan>& source, const std::vector<ByteSpan>& target,
                       const TokenAlignment& a, const std::string& where) {
  size_t one_to_one = 0;
  for (size_t t = 0; t < target.size(); ++t) {
    const Span j = a.target_to_source[t];
    if (j.size() == 1 && a.source_to_target[size_t(j.begin)].size() == 1) {
      ++one_to_one;
      EXPECT_EQ(target[t], source[size_t(j.begin)]) << where << ": 1:1 pair at target " << t;
    }
    // The group: target tokens sharing j, and j's source tokens map back to exactly those.
    Span group{int32_t(t), int32_t(t) + 1};
    while (group.begin > 0 && a.target_to_source[size_t(group.begin - 1)] == j) --group.begin;
    while (group.end < int32_t(target.size()) && a.target_to_source[size_t(group.end)] == j) ++group.end;
    for (int32_t s = j.begin; s < j.end; ++s)
      EXPECT_EQ(a.source_to_target[size_t(s)], group) << where << ": source " << s << " leaves target group at " << t;
    EXPECT_EQ(cover(target, group), cover(source, j)) << where << ": target " << t << "'s group covers other bytes";
  }
  return one_to_one;
}

TEST(OffsetsWhitespace, EveryPairCoversTheSameBytesForFourTokenizers) {
  FUSELLM_REQUIRE_SHARED();
  const Tokenizers& tk = tokenizers();
  size_t pairs = 0, one_to_one = 0;
  for (const std::string& text : whitespace_texts()) {
    std::map<std::string, std::vector<ByteSpan>> spans;
    for (const auto& [name, t] : tk.by_name) {
      const tok::Encoding e = t->encode_untrimmed(text, false);
      spans[name] = spans_of(e);
      EXPECT_TRUE(tiles(spans[name], text)) << name << " on " << json(text).dump();
      // encode keeps HF's offsets (trimmed for ByteLevel) and the same ids.
      EXPECT_EQ(t->encode(text, false).ids, e.ids) << name;
    }
    for (const auto& [target, ts] : spans)
      for (const auto& [source, ss] : spans) {
        if (source == target || ss.empty() || ts.empty()) continue;  // no tokens on a side: nothing aligns
        const std::string where = source + " -> " + target + " on " + json(text).dump();
        one_to_one += check_alignment(ss, ts, align_by_offsets(ss, ts), where);
        pairs += ts.size();
      }
  }
  std::printf("[ offsets  ] whitespace texts, 12 tokenizer pairs: %zu of %zu target positions 1:1\n", one_to_one,
              pairs);
}

// The reported case, spelled out: NeoX's "ĊĠ" (newline + space) covers [10, 12), so Llama-2's <0x0A> is not
// its 1:1 partner; <0x0A> and the ▁ after it together are.
TEST(OffsetsWhitespace, NewlineSpaceIsOneGroupNotAMisPair) {
  FUSELLM_REQUIRE_SHARED();
  const std::string text = "\u200bzwsp,  \n ";
  const auto& llama = *tokenizers().by_name.at("llama2");
  const auto& neox = *tokenizers().by_name.at("neox");
  const tok::Encoding l = llama.encode_untrimmed(text, false), n = neox.encode_untrimmed(text, false);
  const tok::Encoding trimmed = neox.encode(text, false);
  ASSERT_GE(n.ids.size(), 2u);
  EXPECT_EQ(neox.id_to_token(n.ids.back()), "\xC4\x8A\xC4\xA0");  // ĊĠ
  EXPECT_EQ(n.offsets.back(), (std::pair<uint32_t, uint32_t>{10, 12}));
  EXPECT_EQ(n.offsets[n.ids.size() - 2], (std::pair<uint32_t, uint32_t>{8, 10}));  // "  "
  EXPECT_NE(trimmed.offsets.back(), n.offsets.back());                            // HF's trimmed offsets differ
  const TokenAlignment a = align_by_offsets(spans_of(n), spans_of(l));
  const int32_t last_neox = int32_t(n.ids.size()) - 1;
  for (size_t t = 0; t < l.ids.size(); ++t)
    if (l.offsets[t].first >= 10) EXPECT_EQ(a.target_to_source[t], (Span{last_neox, last_neox + 1})) << "llama " << t;
  check_alignment(spans_of(n), spans_of(l), a, "neox -> llama2");
}

// The golden align texts (BBH, code, prose...), NeoX and tok512 onto Llama-2, projected as `fusellm align`
// does by default (fusellm mode, soft, MinED map): 1:1 and fallback rates with the trimmed offsets align
// used before and the untrimmed ones it uses now, and how many 1:1 pairs covered different bytes.
TEST(OffsetsGolden, RatesWithTrimmedAndUntrimmedOffsets) {
  FUSELLM_REQUIRE_SHARED();
  const Tokenizers& tk = tokenizers();
  const auto& llama = *tk.by_name.at("llama2");
  const Vocabulary target_vocab = vocabulary_of(llama);
  for (const std::string source : {"neox", "tok512"}) {
    const auto& src = *tk.by_name.at(source);
    const Vocabulary source_vocab = vocabulary_of(src);
    const VocabMap map =
        test::map_from_ids(source == "neox" ? "vocab_map_neox_to_llama2" : "vocab_map_tok512_to_llama2",
                           source_vocab.tokens.size());
    const Projector projector(source_vocab, target_vocab, map, ProjectionOptions{});
    ProjectionStats before, after;
    size_t mispaired = 0, texts = 0;
    for (const auto& row : test::golden_sequences()) {
      const std::string text = row.at("text").get<std::string>();
      const auto& s_row = row.at("sources").at(source);
      std::vector<int32_t> t_ids = row.at("base").at("ids").get<std::vector<int32_t>>();
      std::vector<int32_t> s_ids = s_row.at("ids").get<std::vector<int32_t>>();
      const tok::Encoding tu = llama.encode_untrimmed(text, false), su = src.encode_untrimmed(text, false);
      // The golden ids end with EOS; skip texts whose tokenization differs (the tokenizer tests' business).
      if (tu.ids != std::vector<int32_t>(t_ids.begin(), t_ids.end() - 1) ||
          su.ids != std::vector<int32_t>(s_ids.begin(), s_ids.end() - 1))
        continue;
      ++texts;
      std::vector<float> logits;
      std::vector<int32_t> topk;
      for (const auto& r : s_row.at("topk_ids"))
        for (const auto& v : r) topk.push_back(v.get<int32_t>());
      for (const auto& r : s_row.at("topk_logits"))
        for (const auto& v : r) logits.push_back(static_cast<float>(v.get<double>()));
      const size_t k = topk.size() / s_ids.size();
      auto with_eos = [&](std::vector<ByteSpan> v) {
        v.emplace_back(uint32_t(text.size()), uint32_t(text.size()));
        return v;
      };
      const std::vector<ByteSpan> tt = with_eos(spans_of(llama.encode(text, false))),
                                  st = with_eos(spans_of(src.encode(text, false))),
                                  tu_spans = with_eos(spans_of(tu)), su_spans = with_eos(spans_of(su));
      const TokenAlignment old_a = align_by_offsets(st, tt), new_a = align_by_offsets(su_spans, tu_spans);
      projector.project(t_ids, s_ids, old_a, topk.data(), logits.data(), k, &before);
      projector.project(t_ids, s_ids, new_a, topk.data(), logits.data(), k, &after);
      for (size_t t = 0; t < t_ids.size(); ++t) {  // old 1:1 pairs whose real bytes differ
        const Span j = old_a.target_to_source[t];
        if (j.size() == 1 && old_a.source_to_target[size_t(j.begin)].size() == 1 && tu_spans[t] != su_spans[size_t(j.begin)])
          ++mispaired;
      }
      check_alignment(su_spans, tu_spans, new_a, source + " golden " + row.at("id").get<std::string>());
    }
    EXPECT_GT(texts, 50u) << source;
    std::printf("[ offsets  ] %s -> llama2, %zu golden texts, %zu positions: trimmed offsets 1:1 %.2f %% fallback "
                "%.2f %% (%zu 1:1 pairs covering different bytes); untrimmed 1:1 %.2f %% fallback %.2f %%\n",
                source.c_str(), texts, after.positions, 100 * before.one_to_one_rate(), 100 * before.fallback_rate(),
                mispaired, 100 * after.one_to_one_rate(), 100 * after.fallback_rate());
  }
}

}  // namespace
}  // namespace fusellm::align
