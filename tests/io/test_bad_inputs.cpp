// Bad checkpoint files: each must fail with one line naming the file (and the tensor where there is one).
#include <gtest/gtest.h>

#include <functional>

#include "common/test_paths.hpp"
#include "fusellm/io/checkpoint.hpp"
#include "fusellm/io/safetensors.hpp"
#include "io/io_test_util.hpp"

namespace fs = std::filesystem;
using fusellm::io::SafetensorsFile;
using namespace fusellm::test;

namespace {

// Runs `action`, which must throw fusellm::Error whose single-line message contains every `expected` part.
void expect_error(const std::function<void()>& action, const std::vector<std::string>& expected) {
  try {
    action();
    ADD_FAILURE() << "no error thrown";
  } catch (const fusellm::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "message spans lines: " << message;
    for (const std::string& part : expected)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' missing from: " << message;
  }
}

fs::path write_file(const std::string& test, const std::string& bytes, const std::string& name = "bad.safetensors") {
  fs::path path = scratch_dir(test) / name;
  write_bytes(path, bytes);
  return path;
}

void expect_open_error(const fs::path& path, std::vector<std::string> expected) {
  expected.insert(expected.begin(), path.string() + ": ");
  expect_error([&] { SafetensorsFile f(path); }, expected);
}

const std::string kFourFloats(16, '\0');

}  // namespace

TEST(BadSafetensors, Truncated) {
  const std::string good = safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kFourFloats);
  expect_open_error(write_file("bad_trunc_len", good.substr(0, 5)), {"truncated"});
  // Cut inside the data: the tensor's bytes are no longer all there.
  expect_open_error(write_file("bad_trunc_data", good.substr(0, good.size() - 4)), {"tensor 'w'", "outside"});
  expect_open_error(write_file("bad_empty", ""), {"truncated"});
}

TEST(BadSafetensors, HeaderLengthBeyondFile) {
  expect_open_error(write_file("bad_hlen", le_u64(1000) + R"({"w":{}})"), {"header length 1000", "past the end"});
  expect_open_error(write_file("bad_hhuge", le_u64(1ull << 40) + "{}"), {"header length"});
}

TEST(BadSafetensors, HeaderNotJsonOrNotAnObject) {
  expect_open_error(write_file("bad_json", safetensors_bytes(R"({"w": {"dtype": )", "")), {"not valid JSON"});
  expect_open_error(write_file("bad_array", safetensors_bytes("[1, 2]", "")), {"not an object"});
  expect_open_error(write_file("bad_binary", safetensors_bytes(std::string("{\"w\n\x01\0", 6), "")),
                    {"not valid JSON"});
  expect_open_error(write_file("bad_entry", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", kFourFloats)),
                    {"tensor 'w'", "data_offsets"});
}

TEST(BadSafetensors, OverlappingOffsets) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  expect_open_error(write_file("bad_overlap", safetensors_bytes(header, std::string(24, '\0'))),
                    {"'a'", "'b'", "overlap"});
}

TEST(BadSafetensors, OffsetsOutsideFile) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})";
  expect_open_error(write_file("bad_outside", safetensors_bytes(header, kFourFloats)),
                    {"tensor 'w'", "data_offsets [16, 32]", "outside the data buffer of 16 bytes"});
  const std::string reversed = R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})";
  expect_open_error(write_file("bad_reversed", safetensors_bytes(reversed, kFourFloats)), {"tensor 'w'"});
}

TEST(BadSafetensors, UnknownDtype) {
  const std::string header = R"({"w":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}})";
  expect_open_error(write_file("bad_unknown", safetensors_bytes(header, kFourFloats)),
                    {"tensor 'w'", "unknown dtype 'F33'"});
}

TEST(BadSafetensors, UnsupportedDtype) {
  const fs::path path = write_file("bad_i64", safetensors_bytes(
      R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", kFourFloats), "X.safetensors");
  expect_open_error(path, {"X.safetensors: tensor 'w': dtype I64 is not supported (F32, F16, BF16, F64)"});
  expect_open_error(write_file("bad_i32", safetensors_bytes(
      R"({"w":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}})", kFourFloats)), {"dtype I32 is not supported"});
}

TEST(BadSafetensors, ShapeSizeMismatch) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})";
  expect_open_error(write_file("bad_shape", safetensors_bytes(header, kFourFloats)),
                    {"tensor 'w'", "needs 24 bytes", "hold 16"});
  const std::string negative = R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})";
  expect_open_error(write_file("bad_negative", safetensors_bytes(negative, kFourFloats)), {"tensor 'w'", "shape"});
}

TEST(BadCheckpoint, IndexNamingMissingShard) {
  const fs::path dir = scratch_dir("bad_index");
  fusellm::io::save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", torch::zeros({2})}});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"metadata": {"total_size": 16}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                 "b": "model-00002-of-00002.safetensors"}})");
  expect_error([&] { fusellm::io::open_checkpoint(dir); },
               {(dir / "model.safetensors.index.json").string() + ": ", "model-00002-of-00002.safetensors",
                "does not exist"});
}

TEST(BadCheckpoint, IndexMappingTensorToWrongShard) {
  const fs::path dir = scratch_dir("bad_index_map");
  fusellm::io::save_safetensors(dir / "model-00001-of-00001.safetensors", {{"a", torch::zeros({2})}});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}})");
  expect_error([&] { fusellm::io::open_checkpoint(dir); }, {"model.safetensors.index.json: ", "tensor 'b'"});
}

TEST(BadCheckpoint, DirectoryWithoutWeights) {
  const fs::path dir = scratch_dir("bad_noweights");
  write_bytes(dir / "config.json", "{}");
  expect_error([&] { fusellm::io::open_checkpoint(dir); }, {dir.string() + ": ", "no model weights"});
  expect_error([&] { fusellm::io::open_checkpoint(dir / "absent"); }, {(dir / "absent").string(), "not a directory"});
}

TEST(BadCheckpoint, CorruptTorchBin) {
  const fs::path dir = scratch_dir("bad_bin");
  write_bytes(dir / "pytorch_model.bin", "this is not a zip archive at all");
  expect_error([&] { fusellm::io::open_checkpoint(dir); }, {(dir / "pytorch_model.bin").string() + ": "});

  // A real archive cut short.
  fusellm::io::save_torch_bin(dir / "good.bin", {{"w", torch::arange(64, torch::kFloat)}});
  const std::string good = read_bytes(dir / "good.bin");
  write_bytes(dir / "pytorch_model.bin", good.substr(0, good.size() / 2));
  expect_error([&] { fusellm::io::open_checkpoint(dir); }, {(dir / "pytorch_model.bin").string() + ": "});
}
