#include <gtest/gtest.h>

#include "common/test_paths.hpp"
#include "fusellm/util/json.hpp"

using namespace fusellm;

TEST(Json, CommentsAllowedAndErrorsNameFileAndKey) {
  auto j = parse_json_text("{ // a comment\n \"a\": 1, /* b */ \"s\": \"x\", \"o\": {\"n\": 2.5}}", "cfg.json");
  JsonView v(j, "cfg.json");
  EXPECT_EQ(v.get<int>("a"), 1);
  EXPECT_EQ(v.child("o").get<double>("n"), 2.5);
  try {
    v.get<int>("s");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cfg.json: key 's': expected an integer, got string");
  }
  try {
    v.child("o").get<int>("missing");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cfg.json: missing required key 'o.missing'");
  }
  EXPECT_THROW(parse_json_text("{not json", "bad.json"), Error);
}

// Found by fuzzing: a number no double holds made nlohmann throw out_of_range, which escaped as a library
// exception; a wrong-typed raw .get<T>() likewise. Both are now one-line Errors naming the file.
TEST(Json, NumberOverflowAndLibraryTypeErrorsAreErrorsNamingTheFile) {
  try {
    parse_json_text(R"({"vocab_size": 11e309})", "config.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: invalid JSON"), std::string::npos) << e.what();
  }
  const json j = parse_json_text(R"({"byte_fallback": 374})", "tokenizer.json");
  try {
    with_json_errors("tokenizer.json", [&] { return j["byte_fallback"].get<bool>(); });
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json: malformed: "), std::string::npos) << e.what();
  }
}

// Found by fuzzing the ZeRO shard table: a raw get<int64_t>() of 9e61 is an undefined float-to-integer cast
// (UBSan); -1 read as unsigned wraps. Integers are checked for kind and range before they are converted.
TEST(Json, IntegersAreCheckedForKindAndRange) {
  EXPECT_EQ(json_integer<int64_t>(json(-3)), -3);
  EXPECT_EQ(json_integer<uint64_t>(json(UINT64_MAX)), UINT64_MAX);
  EXPECT_EQ(json_integer<int32_t>(json(INT32_MIN)), INT32_MIN);
  EXPECT_FALSE(json_integer<int64_t>(json(9e61)));
  EXPECT_FALSE(json_integer<int64_t>(json(2.0)));  // a float, even a whole one: the writer wrote integers
  EXPECT_FALSE(json_integer<int64_t>(json(UINT64_MAX)));
  EXPECT_FALSE(json_integer<uint64_t>(json(-1)));
  EXPECT_FALSE(json_integer<int32_t>(json(int64_t(1) << 31)));
  EXPECT_FALSE(json_integer<int64_t>(json("7")));
  try {
    require_integer<int64_t>(json(9.2e61), "state.json: step");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "state.json: step: expected an integer in [-9223372036854775808, 9223372036854775807], got 9.2e+61");
  }
  const json j = json::parse(R"({"chunks": -1, "n": 3000000000})");
  JsonView v(j, "manifest.json");
  try {
    v.get<uint64_t>("chunks");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "manifest.json: key 'chunks': expected an integer in [0, 18446744073709551615], got -1");
  }
  EXPECT_THROW(v.get<int32_t>("n"), Error);
  EXPECT_EQ(v.get<int64_t>("n"), 3000000000);
}

TEST(Fs, AtomicWriteReplacesWholeFile) {
  auto dir = test::scratch_dir("fs_atomic");
  write_file_atomic(dir / "f.txt", "first");
  write_file_atomic(dir / "f.txt", "second");
  EXPECT_EQ(read_file(dir / "f.txt"), "second");
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
  EXPECT_EQ(n, 1u) << "no temp file may be left behind";
  MappedFile m(dir / "f.txt");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), m.size()), "second");
  EXPECT_THROW(read_file(dir / "absent"), Error);
}
