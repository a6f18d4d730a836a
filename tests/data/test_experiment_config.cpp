// The experiment config: a valid file parses with every default, and each kind of mistake gets its exact
// message with the key path; all problems of a file are reported together.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/test_paths.hpp"
#include "corpus_test_util.hpp"
#include "fusellm/data/corpus.hpp"
#include "fusellm/util/experiment_config.hpp"

using namespace fusellm;
using ::testing::ElementsAre;

namespace {

const std::string kMinimal = R"({
  "models": [
    {"name": "a", "path": "models/a", "role": "source"},
    {"name": "b", "path": "models/b", "role": "target"}
  ],
  "data": {"corpus": "corpus.jsonl"}
})";

ExperimentConfig from_text(const std::string& text, const fs::path& dir = "/cfg") {
  return experiment_config_from_json(parse_json_text(text, "experiment.json"), "experiment.json", dir);
}

// The problems reported for a config text (empty when it is valid).
std::vector<std::string> problems_of(const std::string& text) {
  try {
    from_text(text);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

// kMinimal with one replacement applied, to make each test's mistake obvious.
std::string minimal_with(const std::string& from, const std::string& to) {
  std::string s = kMinimal;
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return s.replace(pos, from.size(), to);
}

}  // namespace

TEST(ExperimentConfig, MinimalConfigGetsEveryDefault) {
  auto cfg = from_text(kMinimal);
  ASSERT_EQ(cfg.models.size(), 2u);
  EXPECT_EQ(cfg.models[0].name, "a");
  EXPECT_EQ(cfg.models[0].path, fs::path("/cfg/models/a"));
  EXPECT_EQ(cfg.models[0].role, ModelRole::Source);
  EXPECT_EQ(cfg.target().name, "b");
  ASSERT_EQ(cfg.sources().size(), 1u);
  EXPECT_EQ(cfg.sources()[0]->name, "a");
  EXPECT_EQ(cfg.find_model("b"), &cfg.models[1]);
  EXPECT_EQ(cfg.find_model("c"), nullptr);
  EXPECT_THAT(cfg.data.corpus, ElementsAre("/cfg/corpus.jsonl"));
  EXPECT_EQ(cfg.data.text_field, "text");
  EXPECT_EQ(cfg.data.txt_mode, TxtMode::Paragraph);
  EXPECT_EQ(cfg.data.txt_separator, "<|endoftext|>");
  EXPECT_EQ(cfg.data.on_bad_line, BadLinePolicy::Fail);
  EXPECT_EQ(cfg.data.chunk_dir, fs::path("/cfg/out/experiment/chunks"));
  EXPECT_EQ(cfg.data.max_length, 2048);
  EXPECT_EQ(cfg.data.margin, 0);
  EXPECT_EQ(cfg.infer.store_dir, fs::path("/cfg/out/experiment/store"));
  EXPECT_EQ(cfg.infer.top_k, 10);
  EXPECT_EQ(cfg.infer.batch_tokens, 16384);
  EXPECT_EQ(cfg.infer.dtype, "auto");
  EXPECT_FALSE(cfg.infer.add_bos.has_value());
  EXPECT_TRUE(cfg.infer.add_eos);
  EXPECT_EQ(cfg.infer.logprob_dtype, "fp16");
  EXPECT_EQ(cfg.infer.shard_records, 4096);
  EXPECT_TRUE(cfg.reserved_sections.empty());
}

TEST(ExperimentConfig, FullConfigFileWithCommentsAndRelativePaths) {
  auto dir = test::scratch_dir("config_full");
  test::write_bytes(dir / "exp" / "run.json", R"({
    // comments are allowed
    "models": [
      {"name": "llama-2", "path": "../models/llama", "role": "target"},
      {"name": "mpt_7b", "path": "/abs/mpt", "role": "source"},  /* absolute stays */
      {"name": "open.llama", "path": "./sub/../ol", "role": "source"}
    ],
    "data": {
      "corpus": ["../corpus/*.jsonl.zst", "/data/extra.txt"],
      "text_field": "content", "txt_mode": "separator", "txt_separator": "###",
      "on_bad_line": "skip", "chunk_dir": "chunks", "max_length": 1024, "margin": 32
    },
    "infer": {"store_dir": "../store", "top_k": 5, "batch_tokens": 8192, "dtype": "bf16",
              "add_bos": false, "add_eos": false, "logprob_dtype": "bf16", "shard_records": 100},
    "train": {"lr": 1e-5, "anything": ["kept", "as", "is"]},
    "eval": {"tasks": ["bbh"]}
  })");
  auto cfg = load_experiment_config(dir / "exp" / "run.json");
  EXPECT_EQ(cfg.config_dir, dir / "exp");
  EXPECT_EQ(cfg.models[0].path, dir / "models" / "llama");
  EXPECT_EQ(cfg.models[1].path, fs::path("/abs/mpt"));
  EXPECT_EQ(cfg.models[2].path, dir / "exp" / "ol");
  EXPECT_EQ(cfg.target().name, "llama-2");
  EXPECT_EQ(cfg.sources().size(), 2u);
  EXPECT_THAT(cfg.data.corpus, ElementsAre((dir / "corpus" / "*.jsonl.zst").string(), "/data/extra.txt"));
  EXPECT_EQ(cfg.data.text_field, "content");
  EXPECT_EQ(cfg.data.txt_mode, TxtMode::Separator);
  EXPECT_EQ(cfg.data.txt_separator, "###");
  EXPECT_EQ(cfg.data.on_bad_line, BadLinePolicy::Skip);
  EXPECT_EQ(cfg.data.chunk_dir, dir / "exp" / "chunks");
  EXPECT_EQ(cfg.data.max_length, 1024);
  EXPECT_EQ(cfg.data.margin, 32);
  EXPECT_EQ(cfg.infer.store_dir, dir / "store");
  EXPECT_EQ(cfg.infer.top_k, 5);
  EXPECT_EQ(cfg.infer.batch_tokens, 8192);
  EXPECT_EQ(cfg.infer.dtype, "bf16");
  EXPECT_EQ(cfg.infer.add_bos, std::optional<bool>(false));
  EXPECT_FALSE(cfg.infer.add_eos);
  EXPECT_EQ(cfg.infer.logprob_dtype, "bf16");
  EXPECT_EQ(cfg.infer.shard_records, 100);
  ASSERT_EQ(cfg.reserved_sections.size(), 2u);
  EXPECT_EQ(cfg.reserved_sections.at("train")["anything"][2], "is");
  EXPECT_EQ(cfg.reserved_sections.at("eval")["tasks"][0], "bbh");

  auto options = data::CorpusOptions::from_config(cfg.data);
  EXPECT_EQ(options.text_field, "content");
  EXPECT_EQ(options.txt_mode, TxtMode::Separator);
  EXPECT_EQ(options.txt_separator, "###");
  EXPECT_EQ(options.on_bad_line, BadLinePolicy::Skip);
}

TEST(ExperimentConfig, MissingKeys) {
  EXPECT_THAT(problems_of(minimal_with(R"("path": "models/a", )", "")),
              ElementsAre("experiment.json: models[0].path: required key is missing"));
  EXPECT_THAT(problems_of(minimal_with(R"("corpus": "corpus.jsonl")", "")),
              ElementsAre("experiment.json: data.corpus: required key is missing"));
  EXPECT_THAT(problems_of("{}"), ElementsAre("experiment.json: models: required key is missing",
                                             "experiment.json: data: required key is missing"));
}

TEST(ExperimentConfig, WrongTypes) {
  EXPECT_THAT(problems_of(minimal_with(R"("corpus.jsonl"})", R"("corpus.jsonl", "max_length": "2048"})")),
              ElementsAre("experiment.json: data.max_length: expected an integer, got string"));
  EXPECT_THAT(problems_of(minimal_with(R"("corpus.jsonl"})", R"("corpus.jsonl", "margin": 1.5})")),
              ElementsAre("experiment.json: data.margin: expected an integer, got float"));
  EXPECT_THAT(problems_of(minimal_with(R"("corpus": "corpus.jsonl")", R"("corpus": ["a.txt", 3])")),
              ElementsAre("experiment.json: data.corpus[1]: expected a string, got integer"));
  EXPECT_THAT(problems_of(minimal_with(R"("corpus": "corpus.jsonl")", R"("corpus": {"a": 1})")),
              ElementsAre("experiment.json: data.corpus: expected a string or an array of strings, got object"));
  EXPECT_THAT(problems_of(minimal_with(R"("name": "a")", R"("name": ["a"])")),
              ElementsAre("experiment.json: models[0].name: expected a string, got array"));
  EXPECT_THAT(problems_of(minimal_with("}\n}", "}, \"infer\": [] }")),
              ElementsAre("experiment.json: infer: expected an object, got array"));
  EXPECT_THAT(problems_of(minimal_with("}\n}", "}, \"infer\": {\"add_bos\": \"yes\", \"add_eos\": 1} }")),
              ElementsAre("experiment.json: infer.add_bos: expected 'auto', true or false, got 'yes'",
                          "experiment.json: infer.add_eos: expected a boolean, got integer"));
  try {
    from_text("[1, 2]");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "experiment.json: expected a JSON object at the top level, got array");
  }
}

TEST(ExperimentConfig, BadValues) {
  EXPECT_THAT(problems_of(minimal_with(R"("role": "source")", R"("role": "teacher")")),
              ElementsAre("experiment.json: models[0].role: expected 'source' or 'target', got 'teacher'"));
  EXPECT_THAT(problems_of(minimal_with(R"("corpus.jsonl"})", R"("corpus.jsonl", "txt_mode": "lines"})")),
              ElementsAre("experiment.json: data.txt_mode: expected one of 'document', 'line', 'paragraph', "
                          "'separator', got 'lines'"));
  EXPECT_THAT(problems_of(minimal_with("}\n}", "}, \"infer\": {\"top_k\": 0, \"logprob_dtype\": \"fp32\"} }")),
              ElementsAre("experiment.json: infer.top_k: must be at least 1, got 0",
                          "experiment.json: infer.logprob_dtype: expected 'fp16' or 'bf16', got 'fp32'"));
  EXPECT_THAT(problems_of(minimal_with(R"("corpus.jsonl"})", R"("corpus.jsonl", "max_length": 64, "margin": 64})")),
              ElementsAre("experiment.json: data.margin: must be less than max_length (64), got 64"));
  EXPECT_THAT(problems_of(minimal_with(R"("name": "a")", R"("name": "my model")")),
              ElementsAre("experiment.json: models[0].name: 'my model' is not a valid model name (use letters, "
                          "digits, '.', '_', '-')"));
  EXPECT_THAT(problems_of(minimal_with(R"("corpus": "corpus.jsonl")", R"("corpus": [])")),
              ElementsAre("experiment.json: data.corpus: must list at least one file, directory or glob"));
  EXPECT_THAT(problems_of(R"({"models": [], "data": {"corpus": "c.txt"}})"),
              ElementsAre("experiment.json: models: must list at least one model"));
}

TEST(ExperimentConfig, UnknownKeysSuggestTheClosest) {
  EXPECT_THAT(problems_of(minimal_with(R"("corpus.jsonl"})", R"("corpus.jsonl", "max_lenght": 512})")),
              ElementsAre("experiment.json: data.max_lenght: unknown key (did you mean 'max_length'?)"));
  EXPECT_THAT(problems_of(minimal_with(R"("role": "target")", R"("role": "target", "Path": "x")")),
              ElementsAre("experiment.json: models[1].Path: unknown key (did you mean 'path'?)"));
  EXPECT_THAT(problems_of(minimal_with("}\n}", "}, \"trian\": {} }")),
              ElementsAre("experiment.json: trian: unknown section (did you mean 'train'?)"));
  EXPECT_THAT(problems_of(minimal_with("}\n}", "}, \"infer\": {\"temperature\": 1} }")),
              ElementsAre("experiment.json: infer.temperature: unknown key (known: store_dir, top_k, batch_tokens, "
                          "dtype, add_bos, add_eos, logprob_dtype, shard_records)"));
  EXPECT_EQ(closest_key("topk", {"top_k", "dtype"}), "top_k");
  EXPECT_EQ(closest_key("zzzzzz", {"top_k", "dtype"}), "");
}

TEST(ExperimentConfig, ExactlyOneTargetAndUniqueNames) {
  EXPECT_THAT(problems_of(minimal_with(R"("role": "source")", R"("role": "target")")),
              ElementsAre("experiment.json: models: exactly one model must have role 'target', found 2: "
                          "models[0] 'a', models[1] 'b'"));
  EXPECT_THAT(problems_of(minimal_with(R"("role": "target")", R"("role": "source")")),
              ElementsAre("experiment.json: models: exactly one model must have role 'target', found none"));
  EXPECT_THAT(problems_of(minimal_with(R"("name": "b")", R"("name": "a")")),
              ElementsAre("experiment.json: models[1].name: duplicate model name 'a' (also models[0])"));
}

TEST(ExperimentConfig, EveryProblemReportedAtOnce) {
  std::string text = R"({
    "models": [{"name": "a", "path": 5, "role": "teacher"}, {"nmae": "b", "path": "p", "role": "target"}],
    "data": {"corpus": "c.txt", "max_length": 0, "on_bad_line": "ignore"},
    "infer": {"top_k": -1},
    "fusion": {"method": "minCE"},
    "extra": 1
  })";
  try {
    from_text(text);
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.problems(),
                ElementsAre("experiment.json: models[0].path: expected a string, got integer",
                            "experiment.json: models[0].role: expected 'source' or 'target', got 'teacher'",
                            "experiment.json: models[1].name: required key is missing",
                            "experiment.json: models[1].nmae: unknown key (did you mean 'name'?)",
                            "experiment.json: data.on_bad_line: expected 'skip' or 'fail', got 'ignore'",
                            "experiment.json: data.max_length: must be at least 2, got 0",
                            "experiment.json: infer.top_k: must be at least 1, got -1",
                            "experiment.json: extra: unknown section (known: models, data, infer, align, fusion, "
                            "train, eval)"));
    // what() holds them all, one per line.
    std::string all = e.what();
    EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 7);
    EXPECT_EQ(all.substr(0, all.find('\n')), e.problems().front());
  }
}

TEST(ExperimentConfig, LoadErrorsNameTheFile) {
  auto dir = test::scratch_dir("config_errors");
  EXPECT_THROW(load_experiment_config(dir / "absent.json"), Error);
  test::write_bytes(dir / "broken.json", "{\"models\": [");
  try {
    load_experiment_config(dir / "broken.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::StartsWith((dir / "broken.json").string() + ": invalid JSON: "));
  }
  test::write_bytes(dir / "exp.json", minimal_with(R"("role": "source")", R"("role": "teacher")"));
  try {
    load_experiment_config(dir / "exp.json");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), ((dir / "exp.json").string() +
                            ": models[0].role: expected 'source' or 'target', got 'teacher'").c_str());
  }
}

TEST(ExperimentConfig, TinyCpuExampleParsesAndItsCorpusReads) {
  auto cfg = load_experiment_config(test::source_dir() / "configs" / "tiny-cpu.json");
  EXPECT_EQ(cfg.target().name, "stories260K-target");
  EXPECT_EQ(cfg.sources().size(), 1u);
  EXPECT_EQ(cfg.data.max_length, 256);
  EXPECT_EQ(cfg.infer.store_dir, (test::source_dir() / "out" / "tiny-cpu" / "store").lexically_normal());
  FUSELLM_REQUIRE_SHARED();
  // The paths point at ../shared beside the checkout.
  EXPECT_TRUE(fs::exists(cfg.target().path / "config.json")) << cfg.target().path;
  auto files = data::resolve_corpus(cfg.data.corpus);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "tinyshakespeare.txt");
}
