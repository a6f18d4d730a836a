// Reading and writing the safetensors format (layout in docs/formats.md).
#include "fusellm/io/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <unordered_map>

#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::io {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so must the host be");

// A header larger than this is not a real checkpoint (HF's own reader caps it at 100 MB too).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

// Valid safetensors dtype names that fusellm does not load (models ship F32/F16/BF16 weights; F64 is what
// fp64 training checkpoints hold).
const std::set<std::string>& unsupported_dtype_names() {
  static const std::set<std::string> names = {"I64",     "I32",     "I16", "I8",  "U64",
                                              "U32",     "U16",     "U8",      "BOOL", "C64", "F8_E4M3",
                                              "F8_E5M2", "F6_E2M3", "F6_E3M2", "F4",  "E8M0", "F8_E8M0"};
  return names;
}

std::optional<at::ScalarType> dtype_from_name(const std::string& name) {
  if (name == "F32") return at::kFloat;
  if (name == "F16") return at::kHalf;
  if (name == "BF16") return at::kBFloat16;
  if (name == "F64") return at::kDouble;
  return std::nullopt;
}

bool is_supported(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16 || t == at::kDouble;
}

uint64_t read_le_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Reads a non-negative integer from a JSON value, or explains why it is not one.
bool as_u64(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

}  // namespace

struct SafetensorsFile::State {
  fs::path path;
  MappedFile file;
  uint64_t data_start = 0;  // 8 + header length
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string, size_t> index;
  std::map<std::string, std::string> metadata;
};

namespace {

TensorInfo parse_entry(const std::string& file, const std::string& name, const json& entry,
                       uint64_t buffer_size) {
  FUSELLM_CHECK(entry.is_object(), "{}: tensor '{}': header entry is not an object", file, name);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    FUSELLM_CHECK(entry.contains(key), "{}: tensor '{}': header entry lacks '{}'", file, name, key);

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  FUSELLM_CHECK(dtype.is_string(), "{}: tensor '{}': dtype is not a string", file, name);
  const std::string dtype_str = dtype.get<std::string>();
  auto scalar = dtype_from_name(dtype_str);
  if (!scalar) {
    if (unsupported_dtype_names().count(dtype_str))
      fail("{}: tensor '{}': dtype {} is not supported (F32, F16, BF16, F64)", file, name, dtype_str);
    fail("{}: tensor '{}': unknown dtype '{}'", file, name, dtype_str);
  }
  info.dtype = *scalar;

  const json& shape = entry["shape"];
  FUSELLM_CHECK(shape.is_array(), "{}: tensor '{}': shape is not an array", file, name);
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : shape) {
    uint64_t dim = 0;
    FUSELLM_CHECK(as_u64(d, dim) && dim <= static_cast<uint64_t>(INT64_MAX),
                  "{}: tensor '{}': shape {} holds a non-integer or negative dimension", file, name, shape.dump());
    info.shape.push_back(static_cast<int64_t>(dim));
    if (dim != 0 && numel > UINT64_MAX / dim) overflow = true;
    numel *= dim;
  }

  const json& offsets = entry["data_offsets"];
  FUSELLM_CHECK(offsets.is_array() && offsets.size() == 2 && as_u64(offsets[0], info.begin) &&
                    as_u64(offsets[1], info.end),
                "{}: tensor '{}': data_offsets must be [begin, end] with non-negative integers, got {}", file,
                name, offsets.dump());
  FUSELLM_CHECK(info.begin <= info.end, "{}: tensor '{}': data_offsets [{}, {}] end before begin", file, name,
                info.begin, info.end);
  FUSELLM_CHECK(info.end <= buffer_size,
                "{}: tensor '{}': data_offsets [{}, {}] lie outside the data buffer of {} bytes", file, name,
                info.begin, info.end, buffer_size);
  const uint64_t elem = at::elementSize(info.dtype);
  FUSELLM_CHECK(!overflow && numel <= UINT64_MAX / elem && numel * elem == info.end - info.begin,
                "{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", file, name,
                shape.dump(), dtype_str, overflow ? std::string("too many") : std::to_string(numel * elem),
                info.begin, info.end, info.end - info.begin);
  return info;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const fs::path& path) : state_(std::make_shared<State>()) {
  State& s = *state_;
  s.path = path;
  s.file = MappedFile(path);
  const std::string file = path.string();
  const uint64_t size = s.file.size();
  FUSELLM_CHECK(size >= 8, "{}: truncated: {} bytes, but a safetensors file starts with an 8-byte header length",
                file, size);
  const uint64_t header_len = read_le_u64(s.file.data());
  FUSELLM_CHECK(header_len <= kMaxHeaderBytes, "{}: header length {} exceeds the {} byte limit (not safetensors?)",
                file, header_len, kMaxHeaderBytes);
  FUSELLM_CHECK(header_len <= size - 8, "{}: header length {} runs past the end of the {} byte file (truncated?)",
                file, header_len, size);
  s.data_start = 8 + header_len;
  const uint64_t buffer_size = size - s.data_start;

  const std::string text(reinterpret_cast<const char*>(s.file.data()) + 8, header_len);
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    std::string why = e.what();  // may quote raw header bytes: keep the message on one printable line
    for (char& c : why)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    fail("{}: header is not valid JSON: {}", file, why);
  }
  FUSELLM_CHECK(header.is_object(), "{}: header is a JSON {}, not an object", file, header.type_name());

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      FUSELLM_CHECK(it->is_object(), "{}: __metadata__ is not an object", file);
      for (auto m = it->begin(); m != it->end(); ++m) {
        FUSELLM_CHECK(m->is_string(), "{}: __metadata__ '{}' is not a string", file, m.key());
        s.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    s.tensors.push_back(parse_entry(file, it.key(), *it, buffer_size));
  }

  std::sort(s.tensors.begin(), s.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Non-empty tensors in begin order must not reach into their successor's bytes.
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : s.tensors) {
    if (t.begin == t.end) continue;
    if (previous != nullptr && previous->end > t.begin)
      fail("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", file, previous->name, previous->begin,
           previous->end, t.name, t.begin, t.end);
    previous = &t;
  }
  for (size_t i = 0; i < s.tensors.size(); ++i) s.index.emplace(s.tensors[i].name, i);
}

const fs::path& SafetensorsFile::path() const { return state_->path; }
const std::vector<TensorInfo>& SafetensorsFile::tensors() const { return state_->tensors; }
bool SafetensorsFile::contains(const std::string& name) const { return state_->index.count(name) > 0; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return state_->metadata; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = state_->index.find(name);
  if (it == state_->index.end()) fail("{}: no tensor '{}'", state_->path.string(), name);
  return state_->tensors[it->second];
}

at::Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  auto options = at::TensorOptions().dtype(t.dtype).device(at::kCPU);
  const uint8_t* bytes = state_->file.data() + state_->data_start + t.begin;
  if (t.begin == t.end) return at::empty(t.shape, options);
  // Unaligned data (headers not padded to 8) is copied rather than handed to kernels as a typed pointer.
  if (reinterpret_cast<uintptr_t>(bytes) % at::elementSize(t.dtype) != 0) {
    at::Tensor out = at::empty(t.shape, options);
    std::memcpy(out.data_ptr(), bytes, t.end - t.begin);
    return out;
  }
  std::shared_ptr<State> keep_alive = state_;
  return torch::from_blob(
      const_cast<uint8_t*>(bytes), t.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
}

at::Tensor SafetensorsFile::load(const std::string& name, std::optional<at::ScalarType> dtype,
                                 at::Device device) const {
  at::Tensor mapped = view(name);
  const at::ScalarType target = dtype.value_or(mapped.scalar_type());
  // copy=true: the result never aliases the mapping.
  return mapped.to(device, target, /*non_blocking=*/false, /*copy=*/true);
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return c10::toString(t);  // no safetensors name; PyTorch's
  }
}

namespace {

uint64_t byte_size(const at::Tensor& t) { return static_cast<uint64_t>(t.numel()) * t.element_size(); }

}  // namespace

void save_safetensors(const fs::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  std::vector<at::Tensor> contiguous;
  contiguous.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    FUSELLM_CHECK(name != "__metadata__", "{}: '__metadata__' cannot name a tensor", file);
    FUSELLM_CHECK(seen.insert(name).second, "{}: tensor '{}' given twice", file, name);
    FUSELLM_CHECK(tensor.defined(), "{}: tensor '{}' is undefined", file, name);
    FUSELLM_CHECK(is_supported(tensor.scalar_type()), "{}: tensor '{}': dtype {} cannot be saved (F32, F16, BF16, F64)",
                  file, name, c10::toString(tensor.scalar_type()));
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = byte_size(cpu);
    header[name] = {{"dtype", dtype_name(cpu.scalar_type())},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(std::move(cpu));
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // data buffer starts 8-aligned

  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const fs::path temp = temp_path_for(path);
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot create: {}", temp.string(), std::strerror(errno));
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header_text.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(length), 8);
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const at::Tensor& t : contiguous)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(byte_size(t)));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      fs::remove(temp, ec);
      fail("{}: write failed (disk full?)", file);
    }
  }
  commit_temp_file(temp, path);
}

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

bool is_shard_name(const std::string& name) {
  // model-00001-of-00002.safetensors
  return name.size() > 17 && name.rfind("model-", 0) == 0 && name.find("-of-") != std::string::npos &&
         name.size() >= 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0;
}

// Removes weight files of an earlier save that the new one does not include, so a reader never mixes them.
void remove_stale_weights(const fs::path& dir, const std::set<std::string>& keep) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (keep.count(name)) continue;
    if (name == kSingleFile || name == kIndexFile || is_shard_name(name)) fs::remove(entry.path(), ec);
  }
}

}  // namespace

std::vector<std::string> save_sharded_safetensors(const fs::path& dir, const NamedTensors& tensors,
                                                  uint64_t max_shard_bytes) {
  // Greedy in the given order, as HF's split: a tensor opens a new shard when it would push a non-empty
  // shard past the limit; a tensor larger than the limit gets a shard of its own.
  std::vector<NamedTensors> shards(1);
  uint64_t shard_bytes = 0;
  uint64_t total_size = 0;
  for (const auto& named : tensors) {
    const uint64_t bytes = named.second.defined() ? byte_size(named.second) : 0;
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(named);
    shard_bytes += bytes;
    total_size += bytes;
  }
  fs::create_directories(dir);

  if (shards.size() == 1) {
    save_safetensors(dir / kSingleFile, shards[0]);
    remove_stale_weights(dir, {kSingleFile});
    return {kSingleFile};
  }

  std::vector<std::string> names;
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    names.push_back(fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size()));
    save_safetensors(dir / names.back(), shards[i]);
    for (const auto& named : shards[i]) weight_map[named.first] = names.back();
  }
  // Stale files go before the index appears: a crash in between leaves "no weights", never old weights.
  remove_stale_weights(dir, std::set<std::string>(names.begin(), names.end()));
  json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  write_file_atomic(dir / kIndexFile, index.dump(2) + "\n");
  return names;
}

}  // namespace fusellm::io
