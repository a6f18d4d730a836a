// pytorch_model.bin: torch.save archives built byte by byte as Python writes them, LibTorch's own
// pickle_save/pickle_load as independent writer and reader, and .bin checkpoint directories.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/serialize.h>

#include "common/test_paths.hpp"
#include "fusellm/io/checkpoint.hpp"
#include "fusellm/io/safetensors.hpp"
#include "io/io_test_util.hpp"

namespace fs = std::filesystem;
using namespace fusellm::test;

namespace {

// Emits pickle protocol 2 opcodes the way CPython's pickler does for torch.save (memoising with BINPUT).
class PickleBuilder {
 public:
  PickleBuilder& proto() { return op("\x80\x02"); }
  PickleBuilder& global(const std::string& module, const std::string& name) {
    return op("c" + module + "\n" + name + "\n").put();
  }
  PickleBuilder& str(const std::string& s) {
    return op("X" + std::string(le_u64(s.size()).substr(0, 4)) + s).put();
  }
  PickleBuilder& int1(uint8_t v) { return op(std::string("K") + static_cast<char>(v)); }
  PickleBuilder& int4(int32_t v) { return op("J" + le_u64(static_cast<uint32_t>(v)).substr(0, 4)); }
  PickleBuilder& long1(int64_t v, uint8_t bytes) {
    return op(std::string("\x8a") + static_cast<char>(bytes) + le_u64(static_cast<uint64_t>(v)).substr(0, bytes));
  }
  PickleBuilder& mark() { return op("("); }
  PickleBuilder& tuple() { return op("t").put(); }
  PickleBuilder& tuple1() { return op("\x85").put(); }
  PickleBuilder& tuple2() { return op("\x86").put(); }
  PickleBuilder& empty_tuple() { return op(")"); }
  PickleBuilder& empty_dict() { return op("}").put(); }
  PickleBuilder& newfalse() { return op("\x89"); }
  PickleBuilder& reduce() { return op("R").put(); }
  PickleBuilder& persid() { return op("Q"); }
  PickleBuilder& setitem() { return op("s"); }
  PickleBuilder& setitems() { return op("u"); }
  PickleBuilder& build() { return op("b"); }
  PickleBuilder& get(uint8_t slot) { return op(std::string("h") + static_cast<char>(slot)); }
  PickleBuilder& stop() { return op("."); }
  uint8_t last_slot() const { return static_cast<uint8_t>(memo_ - 1); }
  const std::string& bytes() const { return bytes_; }

  // _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())
  PickleBuilder& tensor(uint8_t ordered_dict_slot, const std::string& storage_type, const std::string& key,
                        uint8_t numel, uint8_t offset, std::vector<uint8_t> size, std::vector<uint8_t> stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").int1(numel).tuple().persid();
    int1(offset);
    small_tuple(size);
    small_tuple(stride);
    newfalse().get(ordered_dict_slot).empty_tuple().reduce();
    return tuple().reduce();
  }

 private:
  PickleBuilder& op(const std::string& s) {
    bytes_ += s;
    return *this;
  }
  PickleBuilder& put() { return op(std::string("q") + static_cast<char>(memo_++)); }
  void small_tuple(const std::vector<uint8_t>& v) {
    if (v.size() == 1) {
      int1(v[0]).tuple1();
    } else if (v.size() == 2) {
      int1(v[0]).int1(v[1]).tuple2();
    } else {
      mark();
      for (uint8_t x : v) int1(x);
      tuple();
    }
  }
  std::string bytes_;
  int memo_ = 0;
};

template <typename T>
void write_record(caffe2::serialize::PyTorchStreamWriter& zip, const std::string& name, const std::vector<T>& v) {
  zip.writeRecord(name, v.data(), v.size() * sizeof(T));
}

// What torch.save(model.state_dict(), path) writes for a small model: an OrderedDict with _metadata,
// bf16 weights tied through one storage (one a transposed view), a Parameter viewing an offset slice,
// fp16, int64 and bool buffers, and one non-tensor entry.
void write_python_style_bin(const fs::path& path) {
  PickleBuilder p;
  p.proto().global("collections", "OrderedDict");
  const uint8_t ordered_dict = p.last_slot();
  p.empty_tuple().reduce().mark();
  p.str("wte.weight").tensor(ordered_dict, "BFloat16Storage", "0", 6, 0, {3, 2}, {2, 1});
  p.str("lm_head.weight").tensor(ordered_dict, "BFloat16Storage", "0", 6, 0, {2, 3}, {1, 2});
  p.str("attn.weight").global("torch._utils", "_rebuild_parameter").mark();
  p.tensor(ordered_dict, "FloatStorage", "1", 12, 4, {2, 3}, {3, 1});
  p.newfalse().get(ordered_dict).empty_tuple().reduce().tuple().reduce();
  p.str("norm.bias").tensor(ordered_dict, "HalfStorage", "2", 2, 0, {2}, {1});
  p.str("step").int4(-5);
  p.setitems();
  // A second SETITEMS batch, as CPython emits every 1000 items, with ints in the wider encodings.
  p.mark().str("position_ids").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.mark().str("storage").global("torch", "LongStorage").str("3").str("cpu").long1(3, 1).tuple().persid();
  p.int4(0).int1(1).int1(3).tuple2().int1(3).int1(1).tuple2().newfalse().get(ordered_dict).empty_tuple().reduce();
  p.tuple().reduce();
  p.str("attn.bias").tensor(ordered_dict, "BoolStorage", "4", 4, 0, {2, 2}, {2, 1});
  p.setitems();
  // state: {'_metadata': OrderedDict([('', {'version': 1})])}
  p.empty_dict().str("_metadata").get(ordered_dict).empty_tuple().reduce();
  p.str("").empty_dict().str("version").int1(1).setitem().setitem().setitem().build().stop();

  caffe2::serialize::PyTorchStreamWriter zip(path.string());
  zip.writeRecord("data.pkl", p.bytes().data(), p.bytes().size());
  write_record<uint16_t>(zip, "data/0", {0x3F80, 0x4000, 0x4040, 0x4080, 0x40A0, 0x40C0});  // bf16 1..6
  std::vector<float> f32(12);
  for (int i = 0; i < 12; ++i) f32[i] = static_cast<float>(i);
  write_record(zip, "data/1", f32);
  write_record<uint16_t>(zip, "data/2", {0x3C00, 0xC000});  // fp16 1, -2
  write_record<int64_t>(zip, "data/3", {0, 1, 2});
  write_record<uint8_t>(zip, "data/4", {1, 0, 1, 1});
  zip.writeEndOfFile();
}

at::Tensor f32(std::vector<float> v, std::vector<int64_t> shape) {
  return torch::tensor(v, torch::kFloat).view(shape);
}

std::map<std::string, at::Tensor> mixed_tensors() {
  torch::manual_seed(3);
  at::Tensor base = torch::randn({4, 6}).to(torch::kBFloat16);
  return {
      {"embed.weight", base},
      {"head.weight", base.t()},                // shares base's storage
      {"slice", base.narrow(0, 1, 2)},          // an offset view of it
      {"norm.weight", torch::randn({6}).to(torch::kHalf)},
      {"proj.weight", torch::randn({3, 5})},
      {"position_ids", torch::arange(7, torch::kLong)},
      {"mask", torch::rand({3, 3}) > 0.5},
  };
}

}  // namespace

TEST(TorchBin, ReadsPythonTorchSaveLayout) {
  const fs::path path = scratch_dir("bin_python") / "pytorch_model.bin";
  write_python_style_bin(path);
  auto tensors = fusellm::io::load_torch_bin(path);
  std::vector<std::string> names;
  for (const auto& kv : tensors) names.push_back(kv.first);
  EXPECT_EQ(names, (std::vector<std::string>{"attn.bias", "attn.weight", "lm_head.weight", "norm.bias",
                                             "position_ids", "wte.weight"}));

  EXPECT_EQ(tensors["wte.weight"].scalar_type(), at::kBFloat16);
  EXPECT_TRUE(torch::equal(tensors["wte.weight"].to(torch::kFloat), f32({1, 2, 3, 4, 5, 6}, {3, 2})));
  EXPECT_TRUE(torch::equal(tensors["lm_head.weight"].to(torch::kFloat), f32({1, 3, 5, 2, 4, 6}, {2, 3})));
  EXPECT_EQ(tensors["wte.weight"].storage().data(), tensors["lm_head.weight"].storage().data()) << "tied storage";
  EXPECT_TRUE(torch::equal(tensors["attn.weight"], f32({4, 5, 6, 7, 8, 9}, {2, 3})));
  EXPECT_EQ(tensors["norm.bias"].scalar_type(), at::kHalf);
  EXPECT_TRUE(torch::equal(tensors["norm.bias"].to(torch::kFloat), f32({1, -2}, {2})));
  EXPECT_TRUE(torch::equal(tensors["position_ids"], torch::tensor({0L, 1L, 2L}).view({1, 3})));
  EXPECT_TRUE(torch::equal(tensors["attn.bias"], torch::tensor({true, false, true, true}).view({2, 2})));

  // Through open_checkpoint: bf16 → fp32 on request; integer and bool buffers keep their dtype.
  auto reader = fusellm::io::open_checkpoint(path.parent_path());
  EXPECT_NE(reader->describe().find("pytorch_model.bin"), std::string::npos);
  EXPECT_EQ(reader->dtype("wte.weight"), at::kBFloat16);
  EXPECT_EQ(reader->shape("lm_head.weight"), (std::vector<int64_t>{2, 3}));
  fusellm::io::LoadOptions to_fp32;
  to_fp32.dtype = at::kFloat;
  at::Tensor head = reader->load("lm_head.weight", to_fp32);
  EXPECT_EQ(head.scalar_type(), at::kFloat);
  EXPECT_TRUE(head.is_contiguous());
  EXPECT_TRUE(torch::equal(head, f32({1, 3, 5, 2, 4, 6}, {2, 3})));
  EXPECT_EQ(reader->load("position_ids", to_fp32).scalar_type(), at::kLong);
  EXPECT_EQ(reader->load("attn.bias", to_fp32).scalar_type(), at::kBool);
  // Loaded tensors are owned: writing one leaves its tied partner alone.
  at::Tensor wte = reader->load("wte.weight", {});
  wte.zero_();
  EXPECT_TRUE(torch::equal(reader->load("lm_head.weight", to_fp32), f32({1, 3, 5, 2, 4, 6}, {2, 3})));
}

TEST(TorchBin, SaveThenOpenCheckpointIsIdentical) {
  const fs::path dir = scratch_dir("bin_roundtrip");
  auto tensors = mixed_tensors();
  fusellm::io::save_torch_bin(dir / "pytorch_model.bin", tensors);
  auto reader = fusellm::io::open_checkpoint(dir);
  std::vector<std::string> names;
  for (const auto& kv : tensors) names.push_back(kv.first);
  EXPECT_EQ(reader->names(), names);
  for (const auto& [name, tensor] : tensors) {
    EXPECT_EQ(reader->dtype(name), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(reader->load(name, {}), tensor)) << name;
  }
  // Views of one storage come back as views of one storage.
  auto raw = fusellm::io::load_torch_bin(dir / "pytorch_model.bin");
  EXPECT_EQ(raw["embed.weight"].storage().data(), raw["head.weight"].storage().data());
  EXPECT_EQ(raw["embed.weight"].storage().data(), raw["slice"].storage().data());
}

TEST(TorchBin, LibTorchReadsWhatWeWrite) {
  const fs::path path = scratch_dir("bin_libtorch_reads") / "pytorch_model.bin";
  auto tensors = mixed_tensors();
  fusellm::io::save_torch_bin(path, tensors);
  const std::string bytes = read_bytes(path);
  c10::IValue value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  ASSERT_TRUE(value.isGenericDict());
  auto dict = value.toGenericDict();
  EXPECT_EQ(dict.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) EXPECT_TRUE(torch::equal(dict.at(name).toTensor(), tensor)) << name;
}

TEST(TorchBin, ReadsLibTorchPickleSave) {
  const fs::path path = scratch_dir("bin_libtorch_writes") / "x.bin";
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : mixed_tensors()) dict.insert(name, tensor);
  std::vector<char> archive = torch::pickle_save(dict);
  write_bytes(path, std::string(archive.begin(), archive.end()));
  auto loaded = fusellm::io::load_torch_bin(path);
  for (const auto& [name, tensor] : mixed_tensors()) EXPECT_TRUE(torch::equal(loaded.at(name), tensor)) << name;
}

TEST(TorchBin, ShardedIndexAndPreferenceForSafetensors) {
  const fs::path dir = scratch_dir("bin_sharded");
  fusellm::io::save_torch_bin(dir / "pytorch_model-00001-of-00002.bin", {{"a", torch::ones({2})}});
  fusellm::io::save_torch_bin(dir / "pytorch_model-00002-of-00002.bin",
                              {{"b", torch::full({3}, 2.0)}, {"stray", torch::zeros({1})}});
  write_bytes(dir / "pytorch_model.bin.index.json",
              R"({"metadata": {"total_size": 20}, "weight_map": {"a": "pytorch_model-00001-of-00002.bin",
                 "b": "pytorch_model-00002-of-00002.bin"}})");
  auto reader = fusellm::io::open_checkpoint(dir);
  EXPECT_NE(reader->describe().find("pytorch_model.bin.index.json (2 shards"), std::string::npos);
  EXPECT_EQ(reader->names(), (std::vector<std::string>{"a", "b"}));  // the index decides
  EXPECT_TRUE(torch::equal(reader->load("b", {}), torch::full({3}, 2.0)));

  // Safetensors win when both are present, as in HF.
  fusellm::io::save_sharded_safetensors(dir, {{"a", torch::full({2}, 7.0)}});
  reader = fusellm::io::open_checkpoint(dir);
  EXPECT_NE(reader->describe().find("model.safetensors"), std::string::npos);
  EXPECT_TRUE(torch::equal(reader->load("a", {}), torch::full({2}, 7.0)));
}

TEST(TorchBin, IndexNamingMissingBinShard) {
  const fs::path dir = scratch_dir("bin_missing_shard");
  fusellm::io::save_torch_bin(dir / "pytorch_model-00001-of-00002.bin", {{"a", torch::ones({2})}});
  write_bytes(dir / "pytorch_model.bin.index.json",
              R"({"weight_map": {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}})");
  try {
    fusellm::io::open_checkpoint(dir);
    FAIL() << "expected an error";
  } catch (const fusellm::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("pytorch_model.bin.index.json: "), std::string::npos) << message;
    EXPECT_NE(message.find("pytorch_model-00002-of-00002.bin"), std::string::npos) << message;
  }
}

namespace {

// Writes an archive holding only data.pkl (no storage records) and expects load_torch_bin to fail with an
// Error naming the file and containing every one of `parts`.
void expect_pickle_only_archive_error(const std::string& scratch, const PickleBuilder& p,
                                      const std::vector<std::string>& parts) {
  const fs::path path = scratch_dir(scratch) / "pytorch_model.bin";
  {
    caffe2::serialize::PyTorchStreamWriter zip(path.string());
    zip.writeRecord("data.pkl", p.bytes().data(), p.bytes().size());
    zip.writeEndOfFile();
  }
  try {
    fusellm::io::load_torch_bin(path);
    FAIL() << "expected an error";
  } catch (const fusellm::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string() + ": "), std::string::npos) << message;
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

}  // namespace

TEST(TorchBin, MissingStorageRecord) {
  PickleBuilder p;
  p.proto().global("collections", "OrderedDict");
  const uint8_t ordered_dict = p.last_slot();
  p.empty_tuple().reduce().str("w").tensor(ordered_dict, "FloatStorage", "9", 2, 0, {2}, {1}).setitem().stop();
  expect_pickle_only_archive_error("bin_missing_record", p, {"data/9"});
}

// The unpickler interprets only the globals a state dict needs (docs/formats.md): a pickle naming any
// other — here the classic os.system payload — is refused at once, naming the file, offset and global.
TEST(TorchBin, RefusesGlobalsOutsideTheAllowList) {
  PickleBuilder p;
  p.proto().global("os", "system");
  p.stop();
  expect_pickle_only_archive_error("bin_evil_global", p, {"'os.system'", "at byte 2"});
}
