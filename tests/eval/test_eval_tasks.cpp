// Requests exactly as the paper's harnesses build them (../shared/docs/eval-protocol.md): exact context and
// continuation strings per Common Sense task, from both the HF row layouts and the llm-foundry files; the
// BBH prompt acceptance hashes; open-instruct's answer extraction and exact match on tricky predictions;
// one-line errors for bad rows and unknown tasks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/error_of.hpp"
#include "common/sha256.hpp"
#include "fusellm/eval/py_text.hpp"
#include "common/test_paths.hpp"
#include "fusellm/eval/bbh.hpp"
#include "fusellm/eval/evaluator.hpp"
#include "fusellm/eval/task.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::eval {
namespace {

using testing::HasSubstr;

std::vector<Doc> docs_of(const std::string& task, const fs::path& data = {}) {
  EvalOptions o;
  o.shared_data = test::shared_dir() / "data";
  if (!data.empty()) o.data[task] = data;
  return load_task_docs(*make_task(task), o);
}

fs::path write_rows(const std::string& name, const std::vector<std::string>& lines) {
  const fs::path path = test::scratch_dir("eval_rows_" + name) / (name + ".jsonl");
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
  return path;
}

TEST(EvalRequests, ArcFromLlmFoundryAndHfRows) {
  FUSELLM_REQUIRE_SHARED();
  const auto docs = docs_of("arc_easy");
  ASSERT_EQ(docs.size(), 2376u);
  EXPECT_EQ(docs[0].requests[0].context,
            "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:");
  EXPECT_EQ(docs[0].requests[0].continuation, " Sunlight is the source of energy for nearly all ecosystems.");
  // Row 93 pads a 3-choice item with a duplicate: dropped, gold re-indexed.
  EXPECT_EQ(docs[93].fields["choices"], json({"decrease", "increase", "remain the same"}));
  EXPECT_EQ(docs[93].fields["gold"], 1);
  EXPECT_EQ(docs[93].requests.size(), 3u);
  EXPECT_EQ(docs_of("arc_challenge").size(), 1172u);
  // HF ai2_arc rows, with a numeric answer key.
  const auto hf = docs_of("arc_easy", write_rows("arc", {
      R"({"question": "What is 1+1?", "choices": {"text": ["1", "2", "3"], "label": ["1", "2", "3"]}, "answerKey": "2"})"}));
  EXPECT_EQ(hf[0].requests[1].context, "Question: What is 1+1?\nAnswer:");
  EXPECT_EQ(hf[0].requests[1].continuation, " 2");
  EXPECT_EQ(hf[0].fields["gold"], 1);
}

TEST(EvalRequests, BoolQOpenBookQaPiqaWinoGrande) {
  FUSELLM_REQUIRE_SHARED();
  const auto boolq = docs_of("boolq");
  ASSERT_EQ(boolq.size(), 3270u);
  const std::string& ctx = boolq[0].requests[0].context;
  EXPECT_EQ(ctx.rfind("All biomass goes through", 0), 0u) << ctx.substr(0, 40);  // "Passage: " removed
  EXPECT_THAT(ctx, testing::EndsWith(" producing gasoline.\nQuestion: does ethanol take more energy make that produces?\nAnswer:"));
  EXPECT_EQ(boolq[0].requests[0].continuation, " yes");
  EXPECT_EQ(boolq[0].requests[1].continuation, " no");
  EXPECT_EQ(boolq[0].fields["gold"], "no");
  // The passage that itself contains "\nQuestion: " splits at the last one.
  EXPECT_THAT(boolq[2417].requests[0].context, testing::EndsWith("\nQuestion: is the sea snake the most venomous snake?\nAnswer:"));
  EXPECT_THAT(make_task("boolq")->notes(), testing::IsEmpty());
  const auto hf_boolq = docs_of("boolq", write_rows("boolq", {R"({"passage": "Ethanol fuel -- All biomass.", "question": "is it", "label": 1})"}));
  EXPECT_EQ(hf_boolq[0].requests[0].context, "Ethanol fuel -- All biomass.\nQuestion: is it?\nAnswer:");
  EXPECT_EQ(hf_boolq[0].fields["gold"], "yes");

  const auto obqa = docs_of("openbookqa");
  ASSERT_EQ(obqa.size(), 500u);
  EXPECT_THAT(obqa[0].requests[1].context, testing::EndsWith(" decide the best way to save money is to"));
  EXPECT_EQ(obqa[0].requests[1].continuation, " quit eating lunch out");
  const auto hf_obqa = docs_of("openbookqa", write_rows("obqa", {
      R"({"question_stem": "Stem", "choices": {"text": ["a", "b", "c", "d"], "label": ["A", "B", "C", "D"]}, "answerKey": " D "})"}));
  EXPECT_EQ(hf_obqa[0].requests[0].context, "Stem");
  EXPECT_EQ(hf_obqa[0].fields["gold"], 3);

  const auto piqa = docs_of("piqa");
  ASSERT_EQ(piqa.size(), 1838u);
  EXPECT_EQ(piqa[0].requests[0].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  const auto hf_piqa = docs_of("piqa", write_rows("piqa", {R"({"goal": "g", "sol1": "x", "sol2": "y", "label": 1})"}));
  EXPECT_EQ(hf_piqa[0].requests[0].context, "Question: g\nAnswer:");
  EXPECT_EQ(hf_piqa[0].requests[1].continuation, " y");

  const auto wino = docs_of("winogrande");
  ASSERT_EQ(wino.size(), 1267u);
  EXPECT_EQ(wino[0].requests[0].context, "Sarah was a much better surgeon than Maria so Sarah");
  EXPECT_EQ(wino[0].requests[1].context, "Sarah was a much better surgeon than Maria so Maria");
  EXPECT_EQ(wino[0].requests[0].continuation, " always got the easier cases.");
  // HF rows: partial contexts up to the blank, the same stripped target under both options.
  const auto hf_wino = docs_of("winogrande", write_rows("wino", {
      R"({"sentence": "Ann gave Bo the book because _ was  done reading. ", "option1": "Ann", "option2": "Bo", "answer": "2"})"}));
  EXPECT_EQ(hf_wino[0].requests[0].context, "Ann gave Bo the book because Ann");
  EXPECT_EQ(hf_wino[0].requests[1].context, "Ann gave Bo the book because Bo");
  EXPECT_EQ(hf_wino[0].requests[0].continuation, " was  done reading.");
  EXPECT_EQ(hf_wino[0].fields["gold"], 1);
}

TEST(EvalRequests, HellaSwagPreprocessing) {
  FUSELLM_REQUIRE_SHARED();
  const auto small = docs_of("hellaswag");
  ASSERT_EQ(small.size(), 4u);
  EXPECT_EQ(small[0].requests[0].continuation, " , the man adds wax to the windshield and cuts it.");
  // HF rows: ctx_b capitalize()d (first upper, rest lower), " [title]" -> ". ", [brackets] dropped, one
  // pass of "  " -> " ", endings stripped.
  const auto hf = docs_of("hellaswag", write_rows("hs", {
      R"({"activity_label": "Home [title] Fix", "ctx_a": "A man  [step] stands.", "ctx_b": "tHE MAN", "endings": ["  walks   away. ", "x", "y", "z"], "label": "0"})"}));
  EXPECT_EQ(hf[0].requests[0].context, "Home. Fix: A man  stands. The man");  // as Python computes it
  EXPECT_EQ(hf[0].requests[0].continuation, " walks  away.");
  // The full validation set in llama.cpp's text form (decompressed from ../shared).
  const fs::path bz2 = test::shared_dir() / "data/eval/hellaswag-text/hellaswag_val_full.txt.bz2";
  const fs::path txt = test::scratch_dir("eval_hellaswag_text") / "hellaswag_val_full.txt";
  if (std::system(("bzcat " + bz2.string() + " > " + txt.string() + " 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "bzcat not available";
  const auto full = docs_of("hellaswag", txt);
  EXPECT_EQ(full.size(), 10042u);
  EXPECT_EQ(full[0].requests[0].context, "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ(full[0].requests[3].continuation, " starts pulling up roofing on a roof.");
  EXPECT_EQ(full[0].fields["gold"], 3);
}

TEST(EvalRequests, BbhPromptsMatchTheAcceptanceHashes) {
  FUSELLM_REQUIRE_SHARED();
  const auto sports = docs_of("bbh_sports_understanding");
  ASSERT_EQ(sports.size(), 250u);
  const std::string& prompt = sports[0].requests[0].context;
  EXPECT_EQ(prompt.size(), 898u);
  EXPECT_EQ(test::sha256_hex(prompt), "2d52396a074f5f4e57602463f8e5918a7656fa38f9d399b7a2f1fca30a75a2c7");
  EXPECT_THAT(prompt, testing::EndsWith(
      "So the answer is yes.\n\nQ: Is the following sentence plausible? \"Elias Lindholm beat the buzzer.\"\nA:"));
  EXPECT_EQ(sports[0].requests[0].kind, RequestKind::generate_until);
  EXPECT_EQ(sports[0].requests[0].max_new_tokens, 512);
  EXPECT_TRUE(sports[0].requests[0].add_bos);
  for (const auto& [task, hash] : std::vector<std::pair<std::string, std::string>>{
           {"boolean_expressions", "9f542c4c3ed0b73182b0300d81614c42c8addb55c2f3a92fb871fcd587924b02"},
           {"dyck_languages", "41cd1267793c2e090044d56f253fe88b698089d7b91ed61c205d9756f60a4948"}}) {
    std::string joined;
    for (const auto& d : docs_of("bbh_" + task)) joined += (joined.empty() ? "" : std::string(1, '\0')) + d.requests[0].context;
    EXPECT_EQ(test::sha256_hex(joined), hash) << task;
  }
  // All 27 tasks, 6511 examples.
  const auto names = expand_task_list({"bbh"});
  EXPECT_EQ(names.size(), 27u);
  size_t examples = 0;
  for (const auto& n : names) examples += docs_of(n).size();
  EXPECT_EQ(examples, 6511u);
}

TEST(EvalBbh, AnswerExtractionAndExactMatch) {
  struct Case { std::string output, answer, target; bool match; };
  const Case cases[] = {
      {" Let's think step by step. 2+2=4. So the answer is 4.", "4", "4", true},
      {"So the answer is (A).", "(A)", "(A)", true},
      {"the answer is Yes.", "Yes", "yes", true},                              // case ignored
      {"So the answer is -24.", "-24", "24", true},                            // '-' is punctuation
      {"So the answer is 24", "So the answer is 24", "24", false},             // no final period: whole output
      {"The answer is 5.5.", "5", "5.5", false},                               // non-greedy up to the first '.'
      {"|he answer is x. The answer is y.", "x", "x", true},                  // [t|T] also matches '|'
      {"the answer is\nmaybe. The answer is no.", "no", "no", true},           // '.' may not follow a newline
      {"  valid  ", "valid", "valid", true},
      {"The answer is [ ] ].", "[ ] ]", "[ ] ]", true},
      {"The answer is a b.", "a b", "ab", false},                               // spaces are kept
      {"The answer is False.", "False", "false", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.output);
    EXPECT_EQ(bbh_extract_answer(c.output), c.answer);
    EXPECT_EQ(bbh_exact_match(bbh_extract_answer(c.output), c.target), c.match);
  }
}

// Python's str.lower() / str.capitalize() (expected values printed by Python 3.11): full mappings (İ → i̇,
// ß.title() → "Ss", the ﬁ ligature → "Fi"), title case (ǆ → ǅ), the Kelvin sign; exact match lowers the
// Python way, so a Kelvin-sign "K" matches "k".
TEST(EvalPyText, LowerAndCapitalizeAsPython) {
  struct Case { std::string s, lower, capitalized; };
  const Case cases[] = {
      {"\u00c0\u00c9\u00ce Stra\u00dfe \u0130stanbul \u0391\u0392\u0393 \u212a",
       "\u00e0\u00e9\u00ee stra\u00dfe i\u0307stanbul \u03b1\u03b2\u03b3 k",
       "\u00c0\u00e9\u00ee stra\u00dfe i\u0307stanbul \u03b1\u03b2\u03b3 k"},
      {"\u01c6emal \u00c9COLE", "\u01c6emal \u00e9cole", "\u01c5emal \u00e9cole"},
      {"\u00dftra\u00dfe \u00dcBER", "\u00dftra\u00dfe \u00fcber", "Sstra\u00dfe \u00fcber"},
      {"\u00e9LAN Vital", "\u00e9lan vital", "\u00c9lan vital"},
      {"\ufb01ne DAY", "\ufb01ne day", "Fine day"},
      {"\u0130I", "i\u0307i", "\u0130i"},
      {"hello WORLD", "hello world", "Hello world"},
      {"", "", ""},
      {"\xff\xfe AB", "\xff\xfe ab", "\xff\xfe ab"},  // not UTF-8: bytes pass through
  };
  for (const Case& c : cases) {
    EXPECT_EQ(py_lower(c.s), c.lower) << c.s;
    EXPECT_EQ(py_capitalize(c.s), c.capitalized) << c.s;
  }
  EXPECT_TRUE(bbh_exact_match("\u212a", "k"));
  EXPECT_FALSE(bbh_exact_match("\u00c9", "e"));
}

// The HF hub's Parquet files give the same documents and requests as the same rows in JSONL
// (tests/data/fixtures/parquet/piqa_rows.*, written by pyarrow).
TEST(EvalRequests, ParquetRowsEqualJsonlRows) {
  const fs::path dir = fs::path(FUSELLM_SOURCE_DIR) / "tests/data/fixtures/parquet";
  const auto from_parquet = docs_of("piqa", dir / "piqa_rows.parquet");
  const auto from_jsonl = docs_of("piqa", dir / "piqa_rows.jsonl");
  ASSERT_EQ(from_parquet.size(), 3u);
  ASSERT_EQ(from_parquet.size(), from_jsonl.size());
  for (size_t i = 0; i < from_parquet.size(); ++i) {
    ASSERT_EQ(from_parquet[i].requests.size(), from_jsonl[i].requests.size());
    for (size_t k = 0; k < from_parquet[i].requests.size(); ++k) {
      EXPECT_EQ(from_parquet[i].requests[k].context, from_jsonl[i].requests[k].context);
      EXPECT_EQ(from_parquet[i].requests[k].continuation, from_jsonl[i].requests[k].continuation);
    }
  }
  EXPECT_EQ(from_parquet[2].requests[1].continuation, " use a thermos \u2014 it works");
}

TEST(EvalErrors, UnknownTasksAndBadRowsAreOneLine) {
  try {
    make_task("arc_eazy");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown task 'arc_eazy' (did you mean 'arc_easy'?)"));
  }
  EXPECT_THROW(make_task("nothing_like_a_task_name"), Error);
  const fs::path bad = write_rows("bad", {R"({"query": "q", "choices": ["a", "b"], "gold": 0})", R"({"query": "q", "choices": ["a"], "gold": 3})"});
  try {
    docs_of("arc_easy", bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(bad.string() + ":2: field 'gold' = 3 is not a choice index"));
  }
  const fs::path broken = write_rows("broken", {R"({"query": "q",)"});
  EXPECT_THROW(docs_of("piqa", broken), Error);
  try {
    docs_of("boolq", write_rows("missing", {R"({"passage": "p", "label": 1})"}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(":1: missing field 'question'"));
  }
  EXPECT_EQ(expand_task_list({"cs", "boolq", "piqa"}),
            (std::vector<std::string>{"arc_easy", "arc_challenge", "boolq", "hellaswag", "openbookqa", "piqa"}));
}

// The generic exact-match task and named instances of a task ("bpb:atlas", "exact_match:arith"): each its
// own results entry with its own --data; strict match after stripping; one-line errors.
TEST(EvalExactMatch, QuestionsFromJsonlScoredStrictly) {
  const fs::path qa = write_rows("qa", {R"({"prompt": "12 + 3 =", "answer": "15"})",
                                        R"({"prompt": "Q: Where? A:", "answer": " Norvale ", "stop": ["\n", "."], "max_new_tokens": 5})"});
  EvalOptions o;
  o.data["exact_match:sums"] = qa;
  const auto task = make_task("exact_match:sums");
  EXPECT_EQ(task->name(), "exact_match:sums");
  EXPECT_EQ(task->metrics(), std::vector<std::string>{"exact_match"});
  const auto docs = load_task_docs(*task, o);
  ASSERT_EQ(docs.size(), 2u);
  const Request& r0 = docs[0].requests.at(0);
  EXPECT_EQ(r0.kind, RequestKind::generate_until);
  EXPECT_EQ(r0.context, "12 + 3 =");
  EXPECT_EQ(r0.stops, std::vector<std::string>{"\n"});
  EXPECT_EQ(r0.max_new_tokens, 32);
  EXPECT_TRUE(r0.stop_on_text);
  EXPECT_TRUE(r0.add_bos);
  EXPECT_EQ(docs[1].requests[0].stops, (std::vector<std::string>{"\n", "."}));
  EXPECT_EQ(docs[1].requests[0].max_new_tokens, 5);
  // A text stop is part of the request's identity (cache key); the open-instruct kind keeps its old key.
  Request token_stops = r0;
  token_stops.stop_on_text = false;
  EXPECT_NE(token_stops.key(), r0.key());
  EXPECT_FALSE(token_stops.to_json().contains("stop_on_text"));
  auto score = [&](size_t doc, const std::string& text) {
    Result res;
    res.text = text;
    json prediction;
    return task->score(docs[doc], {res}, prediction).at("exact_match");
  };
  EXPECT_EQ(score(0, " 15"), 1.0);
  EXPECT_EQ(score(0, "15 "), 1.0);
  EXPECT_EQ(score(0, " 150"), 0.0);
  EXPECT_EQ(score(1, " Norvale"), 1.0);
  EXPECT_EQ(score(1, " norvale"), 0.0);  // case counts
}

TEST(EvalExactMatch, TaskInstancesAndErrors) {
  EXPECT_EQ(make_task("bpb:atlas")->name(), "bpb:atlas");
  EXPECT_EQ(make_task("bpb:atlas")->metrics(), make_task("bpb")->metrics());
  EXPECT_EQ(expand_task_list({"bpb:a", "bpb:b", "bpb:a"}), (std::vector<std::string>{"bpb:a", "bpb:b"}));
  EXPECT_THAT(test::error_of([] { make_task("bpp:atlas"); }), HasSubstr("unknown task 'bpp'"));
  EXPECT_THAT(test::error_of([] { make_task("bpb:"); }), HasSubstr("the label after ':' must be a non-empty name"));
  EXPECT_THAT(test::error_of([] { make_task("bpb:a/b"); }), HasSubstr("the label after ':'"));
  EXPECT_THAT(test::error_of([] { docs_of("exact_match"); }), HasSubstr("pass its questions with --data exact_match[:NAME]=FILE.jsonl"));
  const fs::path bad = write_rows("qa_bad", {R"({"prompt": "x", "answer": "y"})", R"({"prompt": "x", "answer": 3})"});
  EXPECT_THAT(test::error_of([&] { docs_of("exact_match", bad); }), HasSubstr(bad.string() + ":2: expected string fields 'prompt' and 'answer'"));
  const fs::path bad_stop = write_rows("qa_stop", {R"({"prompt": "x", "answer": "y", "stop": [""]})"});
  EXPECT_THAT(test::error_of([&] { docs_of("exact_match", bad_stop); }), HasSubstr(":1: 'stop' must be a non-empty list of strings"));
  const fs::path bad_max = write_rows("qa_max", {R"({"prompt": "x", "answer": "y", "max_new_tokens": 0})"});
  EXPECT_THAT(test::error_of([&] { docs_of("exact_match", bad_max); }), HasSubstr(":1: 'max_new_tokens' must be an integer in [1, 4096]"));
}

TEST(EvalMetrics, MeanAndStderrAsLmEval) {
  const auto [mu, se] = mean_and_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(mu, 0.75);
  EXPECT_NEAR(se, std::sqrt(0.75 * 0.25 / 3), 1e-15);  // sqrt(p(1-p)/(n-1))
}

}  // namespace
}  // namespace fusellm::eval
