// safetensors: reading hand-built files, the layout save_safetensors writes, and sharded round trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_paths.hpp"
#include "fusellm/io/checkpoint.hpp"
#include "fusellm/io/safetensors.hpp"
#include "io/io_test_util.hpp"

namespace fs = std::filesystem;
using fusellm::io::NamedTensors;
using fusellm::io::SafetensorsFile;
using namespace fusellm::test;

namespace {

// Bit patterns with exactly known values: bf16 0x3FC0 = 1.5, 0xC010 = -2.25, 0x4049 = 3.140625;
// fp16 0x3C00 = 1.0, 0xC000 = -2.0, 0x3555 = 0.333251953125.
const std::vector<uint16_t> kBf16Bits = {0x3FC0, 0xC010, 0x0000, 0x4049};
const std::vector<float> kBf16Values = {1.5f, -2.25f, 0.0f, 3.140625f};
const std::vector<uint16_t> kF16Bits = {0x3C00, 0xC000, 0x3555};
const std::vector<float> kF16Values = {1.0f, -2.0f, 0.333251953125f};
const std::vector<float> kF32Values = {1.0f, -2.5f, 3.25f, 1e-3f};

// Header deliberately unpadded and with tensors listed out of offset order.
const std::string kHandHeader =
    R"({"__metadata__":{"format":"pt","note":"hand"},)"
    R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[16,24]},)"
    R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
    R"("h":{"dtype":"F16","shape":[3],"data_offsets":[24,30]}})";

fs::path write_hand_file(const fs::path& dir) {
  fs::path path = dir / "hand.safetensors";
  write_bytes(path, safetensors_bytes(kHandHeader, raw_bytes(kF32Values) + raw_bytes(kBf16Bits) + raw_bytes(kF16Bits)));
  return path;
}

at::Tensor floats(const std::vector<float>& v) { return torch::tensor(v, torch::kFloat); }

NamedTensors synthetic_tensors() {
  torch::manual_seed(7);
  return {
      {"embed.weight", torch::randn({10, 8})},                              // 320 bytes
      {"layers.0.attn.weight", torch::randn({8, 8}).to(torch::kBFloat16)},  // 128
      {"layers.0.norm.weight", torch::randn({8}).to(torch::kHalf)},         // 16
      {"layers.1.attn.weight", torch::randn({8, 8}).to(torch::kHalf)},      // 128
      {"head.weight", torch::randn({8, 10}).t()},                           // non-contiguous, 320
      {"empty", torch::zeros({0, 4})},                                      // 0
  };
}

}  // namespace

TEST(Safetensors, ReadsHandBuiltFile) {
  SafetensorsFile f(write_hand_file(scratch_dir("st_hand")));
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "a");  // offset order
  EXPECT_EQ(f.tensors()[1].name, "b");
  EXPECT_EQ(f.tensors()[2].name, "h");
  EXPECT_EQ(f.metadata().at("note"), "hand");
  EXPECT_EQ(f.info("b").dtype, at::kBFloat16);
  EXPECT_EQ(f.info("b").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(f.info("h").begin, 24u);
  EXPECT_TRUE(f.contains("a"));
  EXPECT_FALSE(f.contains("z"));

  EXPECT_TRUE(torch::equal(f.view("a"), floats(kF32Values)));
  EXPECT_TRUE(torch::equal(f.view("b").to(torch::kFloat), floats(kBf16Values).view({2, 2})));
  EXPECT_TRUE(torch::equal(f.view("h").to(torch::kFloat), floats(kF16Values)));

  at::Tensor converted = f.load("b", at::kFloat);
  EXPECT_EQ(converted.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::equal(converted, floats(kBf16Values).view({2, 2})));
  try {
    f.info("z");
    FAIL() << "expected an error";
  } catch (const fusellm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("hand.safetensors: no tensor 'z'"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ViewKeepsMappingAliveAndLoadOwnsItsData) {
  at::Tensor view, loaded;
  {
    SafetensorsFile f(write_hand_file(scratch_dir("st_alive")));
    view = f.view("a");
    loaded = f.load("a");
  }  // the file object is gone; the view must still read the mapping
  EXPECT_TRUE(torch::equal(view, floats(kF32Values)));
  loaded.add_(1);  // an owned copy is writable
  EXPECT_TRUE(torch::equal(loaded, floats(kF32Values) + 1));
}

TEST(Safetensors, SaveWritesTheStandardLayout) {
  const fs::path path = scratch_dir("st_save") / "out.safetensors";
  NamedTensors tensors = synthetic_tensors();
  fusellm::io::save_safetensors(path, tensors);

  // Parse the file independently of SafetensorsFile.
  const std::string bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u) << "header padded to a multiple of 8";
  const std::string header_text = bytes.substr(8, n);
  const size_t json_end = header_text.find_last_not_of(' ') + 1;
  EXPECT_EQ(header_text[json_end - 1], '}');
  EXPECT_LT(n - json_end, 8u) << "only the padding follows the JSON";
  const auto header = nlohmann::json::parse(header_text);
  EXPECT_EQ(header["__metadata__"], (nlohmann::json{{"format", "pt"}}));
  uint64_t expected_offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const auto& entry = header.at(name);
    const at::Tensor c = tensor.contiguous();
    const uint64_t size = c.numel() * c.element_size();
    EXPECT_EQ(entry["dtype"], fusellm::io::dtype_name(c.scalar_type()));
    EXPECT_EQ(entry["shape"].get<std::vector<int64_t>>(), c.sizes().vec());
    EXPECT_EQ(entry["data_offsets"], (nlohmann::json{expected_offset, expected_offset + size})) << name;
    // An empty tensor's data_ptr() is null, and memcmp with a null pointer is undefined even for 0 bytes (UBSan).
    if (size > 0) EXPECT_EQ(std::memcmp(bytes.data() + 8 + n + expected_offset, c.data_ptr(), size), 0) << name;
    expected_offset += size;
  }
  EXPECT_EQ(bytes.size(), 8 + n + expected_offset);
  for (const auto& entry : fs::directory_iterator(path.parent_path()))
    EXPECT_EQ(entry.path().filename(), "out.safetensors") << "temporary file left behind";
}

TEST(Safetensors, DtypeNames) {
  EXPECT_EQ(fusellm::io::dtype_name(at::kFloat), "F32");
  EXPECT_EQ(fusellm::io::dtype_name(at::kHalf), "F16");
  EXPECT_EQ(fusellm::io::dtype_name(at::kBFloat16), "BF16");
  EXPECT_EQ(fusellm::io::dtype_name(at::kLong), "I64");
  EXPECT_EQ(fusellm::io::dtype_name(at::kBool), "BOOL");
}

TEST(Safetensors, SaveRefusesUnsupportedDtypeAndDuplicates) {
  const fs::path path = scratch_dir("st_save_bad") / "x.safetensors";
  EXPECT_THROW(fusellm::io::save_safetensors(path, {{"w", torch::zeros({2}, torch::kLong)}}), fusellm::Error);
  EXPECT_THROW(fusellm::io::save_safetensors(path, {{"w", torch::zeros({2})}, {"w", torch::zeros({2})}}),
               fusellm::Error);
  EXPECT_FALSE(fs::exists(path));
}

// fp64 training checkpoints: F64 tensors save and load bit for bit.
TEST(Safetensors, Float64RoundTrips) {
  const fs::path path = scratch_dir("st_f64") / "x.safetensors";
  const at::Tensor w = at::arange(6, at::kDouble).div(7.0).reshape({2, 3});
  fusellm::io::save_safetensors(path, {{"w", w}});
  fusellm::io::SafetensorsFile f(path);
  EXPECT_EQ(f.tensors().front().dtype, at::kDouble);
  EXPECT_TRUE(at::equal(f.load("w"), w));
  EXPECT_EQ(fusellm::io::dtype_name(at::kDouble), "F64");
}

TEST(Safetensors, ShardsGreedilyAsHuggingFaceAndRoundTrips) {
  const fs::path dir = scratch_dir("st_sharded");
  NamedTensors tensors = synthetic_tensors();
  // Sizes 320, 128, 16, 128, 320, 0 with a 400-byte limit: [320] [128 16 128] [320 0].
  auto shards = fusellm::io::save_sharded_safetensors(dir, tensors, 400);
  ASSERT_EQ(shards, (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                              "model-00003-of-00003.safetensors"}));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));

  const auto index = nlohmann::json::parse(read_bytes(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 320 + 128 + 16 + 128 + 320);
  const auto& map = index["weight_map"];
  EXPECT_EQ(map.size(), tensors.size());
  EXPECT_EQ(map["embed.weight"], shards[0]);
  EXPECT_EQ(map["layers.0.attn.weight"], shards[1]);
  EXPECT_EQ(map["layers.1.attn.weight"], shards[1]);
  EXPECT_EQ(map["head.weight"], shards[2]);
  EXPECT_EQ(map["empty"], shards[2]);

  auto reader = fusellm::io::open_checkpoint(dir);
  EXPECT_NE(reader->describe().find("model.safetensors.index.json (3 shards"), std::string::npos) << reader->describe();
  std::vector<std::string> expected_names;
  for (const auto& [name, tensor] : tensors) expected_names.push_back(name);
  std::sort(expected_names.begin(), expected_names.end());
  EXPECT_EQ(reader->names(), expected_names);
  for (const auto& [name, tensor] : tensors) {
    EXPECT_EQ(reader->dtype(name), tensor.scalar_type()) << name;
    EXPECT_EQ(reader->shape(name), tensor.sizes().vec()) << name;
    at::Tensor loaded = reader->load(name, {});
    EXPECT_EQ(loaded.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(loaded, tensor)) << name;
  }
}

TEST(Safetensors, ResavingAsOneFileRemovesStaleShards) {
  const fs::path dir = scratch_dir("st_resave");
  NamedTensors tensors = synthetic_tensors();
  fusellm::io::save_sharded_safetensors(dir, tensors, 500);
  tensors[0].second = tensors[0].second + 1;
  auto shards = fusellm::io::save_sharded_safetensors(dir, tensors);
  EXPECT_EQ(shards, std::vector<std::string>{"model.safetensors"});
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE(torch::equal(fusellm::io::open_checkpoint(dir)->load("embed.weight", {}), tensors[0].second));
}

TEST(Safetensors, CheckpointConvertsBf16ToFp32) {
  const fs::path dir = scratch_dir("st_bf16");
  at::Tensor bits = torch::tensor(std::vector<int16_t>(kBf16Bits.begin(), kBf16Bits.end()), torch::kShort);
  at::Tensor bf16 = bits.view(torch::kBFloat16);  // reinterpret the exact bit patterns
  fusellm::io::save_sharded_safetensors(dir, {{"w", bf16}});
  auto reader = fusellm::io::open_checkpoint(dir);
  EXPECT_EQ(reader->dtype("w"), at::kBFloat16);
  fusellm::io::LoadOptions options;
  options.dtype = at::kFloat;
  at::Tensor w = reader->load("w", options);
  EXPECT_EQ(w.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::equal(w, floats(kBf16Values)));
}

TEST(Safetensors, Stories260KRoundTripsThroughShards) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path source = shared_dir() / "data/models/stories260K-hf";
  const fs::path file = source / "model.safetensors";

  // The reader must agree with an independent parse of the header and raw bytes.
  const std::string bytes = read_bytes(file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  auto original = fusellm::io::open_checkpoint(source);
  EXPECT_EQ(original->names().size() + 1, header.size());  // + __metadata__
  NamedTensors all;
  for (const std::string& name : original->names()) {
    const auto& entry = header.at(name);
    const uint64_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    at::Tensor t = original->load(name, {});
    EXPECT_EQ(t.scalar_type(), at::kFloat);
    EXPECT_EQ(t.sizes().vec(), entry["shape"].get<std::vector<int64_t>>());
    ASSERT_EQ(static_cast<uint64_t>(t.numel()) * 4, end - begin);
    EXPECT_EQ(std::memcmp(t.data_ptr(), bytes.data() + 8 + n + begin, end - begin), 0) << name;
    all.emplace_back(name, t);
  }

  const fs::path dir = scratch_dir("st_stories");
  auto shards = fusellm::io::save_sharded_safetensors(dir, all, 300'000);
  EXPECT_GE(shards.size(), 2u);
  auto copy = fusellm::io::open_checkpoint(dir);
  EXPECT_EQ(copy->names(), original->names());
  for (const auto& [name, tensor] : all) EXPECT_TRUE(torch::equal(copy->load(name, {}), tensor)) << name;
}
