// pytorch_model.bin: torch.save's zip archive (records <archive>/data.pkl and <archive>/data/<key>).
#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include <fstream>

#include "fusellm/io/checkpoint.hpp"
#include "fusellm/util/error.hpp"
#include "torch_pickle.hpp"

namespace fusellm::io {
namespace {

// c10 messages carry a backtrace after the first line; the user needs only the first.
std::string first_line(const char* message) {
  std::string s(message);
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

bool starts_with_zip_magic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

}  // namespace

std::map<std::string, at::Tensor> load_torch_bin(const fs::path& path) {
  const std::string file = path.string();
  FUSELLM_CHECK(fs::is_regular_file(path), "{}: no such file", file);
  // torch.save before PyTorch 1.6 wrote a bare pickle stream; only the zip format is read.
  FUSELLM_CHECK(starts_with_zip_magic(path),
                "{}: not a torch.save zip archive (legacy pre-1.6 torch.save files are not supported; re-save "
                "with a recent PyTorch or convert to safetensors)",
                file);
  try {
    caffe2::serialize::PyTorchStreamReader reader(file);
    if (reader.hasRecord("byteorder")) {
      auto [order, order_size] = reader.getRecord("byteorder");
      const std::string byteorder(static_cast<const char*>(order.get()), order_size);
      FUSELLM_CHECK(byteorder == "little", "{}: tensors stored {}-endian; only little-endian is supported", file,
                    byteorder);
    }
    FUSELLM_CHECK(reader.hasRecord("data.pkl"), "{}: archive has no data.pkl record (not written by torch.save?)",
                  file);
    auto [pickle, pickle_size] = reader.getRecord("data.pkl");

    detail::StorageLoader load_storage = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
      const std::string record = "data/" + key;
      FUSELLM_CHECK(reader.hasRecord(record), "{}: storage record '{}' is missing", file, record);
      auto [bytes, size] = reader.getRecord(record);
      const uint64_t expected = static_cast<uint64_t>(numel) * c10::elementSize(dtype);
      FUSELLM_CHECK(size >= expected, "{}: storage record '{}' holds {} bytes, but {} elements of {} need {}", file,
                    record, size, numel, c10::toString(dtype), expected);
      // The tensor owns the record's buffer; views over the same storage share it.
      auto owner = std::make_shared<at::DataPtr>(std::move(bytes));
      return torch::from_blob(
          owner->get(), {numel}, [owner](void*) {}, at::TensorOptions().dtype(dtype).device(at::kCPU));
    };
    return detail::unpickle_state_dict(static_cast<const uint8_t*>(pickle.get()), pickle_size, load_storage, file);
  } catch (const c10::Error& e) {
    fail("{}: cannot read torch.save archive: {}", file, first_line(e.what_without_backtrace()));
  }
}

void save_torch_bin(const fs::path& path, const std::map<std::string, at::Tensor>& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, tensor] : tensors) {
    FUSELLM_CHECK(tensor.defined(), "{}: tensor '{}' is undefined", path.string(), name);
    dict.insert(name, tensor.detach().to(at::kCPU));
  }
  std::vector<char> archive;
  try {
    archive = torch::pickle_save(dict);
  } catch (const c10::Error& e) {
    fail("{}: cannot serialise tensors: {}", path.string(), first_line(e.what_without_backtrace()));
  }
  write_file_atomic(path, std::string_view(archive.data(), archive.size()));
}

}  // namespace fusellm::io
