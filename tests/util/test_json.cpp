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
