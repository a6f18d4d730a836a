// Atomic training checkpoints: temp directory → rename → `latest` pointer → rotation.
#include "fusellm/train/checkpoint.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "fusellm/util/block_digest.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/fault_hooks.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::train {

namespace {

const char* const kModelSideFiles[] = {"config.json", "generation_config.json", "tokenizer.json",
                                       "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                                       "vocab.json", "merges.txt", "added_tokens.json"};

fs::path checkpoints_dir(const fs::path& output_dir) { return output_dir / "checkpoints"; }

// Test hook: FUSELLM_TRAIN_KILL_IN_SAVE=N kills the process with SIGKILL after checkpoint N's temp
// directory is complete and before it is renamed into place (the worst moment for a crash).
void maybe_kill_in_save(int64_t step) { maybe_kill_self("FUSELLM_TRAIN_KILL_IN_SAVE", step); }

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step-", 0) == 0) out.emplace_back(std::atoll(name.c_str() + 5), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every file of a checkpoint (but state.json, which holds this table) with its size, XXH3-64 and block
// checksums: resume verifies them all, so a flipped byte anywhere — weights, optimizer state, a ZeRO shard —
// is an error naming the file and where in it, never a silently different run.
json file_table(const fs::path& checkpoint) {
  json files = json::object();
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(checkpoint))
    if (e.is_regular_file()) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const fs::path& path : paths) {
    const std::string rel = fs::relative(path, checkpoint).generic_string();
    if (rel == "trainer_state/state.json") continue;
    const MappedFile file(path);
    json entry = {{"bytes", file.size()}, {"xxh3_64", xxh3_hex(file.data(), file.size())}};
    BlockDigest::of(file.data(), file.size()).to_json(entry);
    files[rel] = std::move(entry);
  }
  return files;
}

void verify_file_table(const fs::path& checkpoint, const json& files, const std::string& manifest) {
  FUSELLM_CHECK(files.is_object(), "{}: 'files' is not an object", manifest);
  for (const auto& [rel, entry] : files.items()) {
    FUSELLM_CHECK(!rel.empty() && rel.front() != '/' && rel.find("..") == std::string::npos,
                  "{}: files: '{}' is not a path inside the checkpoint", manifest, rel);
    const fs::path path = checkpoint / rel;
    std::error_code ec;
    FUSELLM_CHECK(fs::is_regular_file(path, ec), "{}: missing (listed in {})", path.string(), manifest);
    const JsonView view(entry, manifest, "files." + rel);
    const uint64_t bytes = view.get<uint64_t>("bytes"), size = fs::file_size(path);
    FUSELLM_CHECK(size == bytes, "{}: {} bytes, {} says {} (truncated or altered)", path.string(), size, manifest, bytes);
    const MappedFile file(path);
    const std::string actual = xxh3_hex(file.data(), file.size());
    const std::string want = view.get<std::string>("xxh3_64");
    FUSELLM_CHECK(actual == want, "{}: checksum mismatch{} (xxh3_64 {}, {} says {}): the checkpoint is corrupt",
                  path.string(), BlockDigest::from_json(entry, manifest).locate_damage(file.data(), file.size()),
                  actual, manifest, want);
  }
}

}  // namespace

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:08d}", step); }

fs::path begin_checkpoint(const fs::path& output_dir, int64_t step) {
  const fs::path dir = checkpoints_dir(output_dir);
  fs::create_directories(dir);
  // Leftovers of a save that crashed: never pointed to, safe to drop.
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path());
  // One name for every rank of the run: ZeRO ranks write their shards into it (the pid would differ).
  const fs::path tmp = dir / (".tmp-" + checkpoint_name(step));
  fs::create_directories(tmp / "trainer_state");
  return tmp;
}

fs::path save_checkpoint(const fs::path& output_dir, const fs::path& model_source, const io::NamedTensors& weights,
                         const TrainState& state, int64_t keep_last, const std::optional<fs::path>& begun) {
  const fs::path dir = checkpoints_dir(output_dir);
  const std::string name = checkpoint_name(state.step);
  const fs::path tmp = begun ? *begun : begin_checkpoint(output_dir, state.step);
  for (const char* file : kModelSideFiles)
    if (fs::exists(model_source / file)) write_file_atomic(tmp / file, read_file(model_source / file));
  io::NamedTensors detached;
  detached.reserve(weights.size());
  for (const auto& [n, t] : weights) detached.emplace_back(n, t.detach());
  io::save_sharded_safetensors(tmp, detached);

  if (state.zero.is_null()) io::save_safetensors(tmp / "trainer_state" / "optimizer.safetensors", state.optimizer);
  if (state.rng_state.defined()) {  // raw bytes: safetensors here holds floating tensors only
    at::Tensor rng = state.rng_state.contiguous();
    write_file_atomic(tmp / "trainer_state" / "rng_cpu.bin",
                      std::string_view(static_cast<const char*>(rng.data_ptr()), rng.nbytes()));
  }
  json meta = {{"format", "fusellm.train_state"}, {"version", 1}, {"step", state.step},
               {"total_steps", state.total_steps}, {"loader", state.loader_position}, {"config", state.config}};
  if (!state.zero.is_null()) meta["zero"] = state.zero;
  meta["files"] = file_table(tmp);
  write_file_atomic(tmp / "trainer_state" / "state.json", meta.dump(2) + "\n");
  maybe_kill_in_save(state.step);

  const fs::path final_dir = dir / name;
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-save of the same step after a resume
  fs::rename(tmp, final_dir);
  write_file_atomic(dir / "latest", name + "\n");

  if (keep_last > 0) {
    auto all = list_checkpoints(dir);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i)
      if (all[i].second != final_dir) fs::remove_all(all[i].second);
  }
  return final_dir;
}

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  const fs::path pointer = checkpoints_dir(output_dir) / "latest";
  if (!fs::exists(pointer)) return std::nullopt;
  std::string name = read_file(pointer);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  FUSELLM_CHECK(is_plain_file_name(name), "{}: '{}' is not a checkpoint directory name", pointer.string(), name);
  const fs::path dir = checkpoints_dir(output_dir) / name;
  std::error_code ec;
  FUSELLM_CHECK(fs::is_directory(dir, ec), "{}: points to '{}', which does not exist", pointer.string(), name);
  return dir;
}

namespace {

TrainState load_train_state_checked(const fs::path& checkpoint_dir) {
  const fs::path state_dir = checkpoint_dir / "trainer_state";
  const fs::path meta_path = state_dir / "state.json";
  json meta = json::parse(read_file(meta_path), nullptr, false);
  FUSELLM_CHECK(!meta.is_discarded() && meta.is_object() && meta.value("format", "") == "fusellm.train_state",
                "{}: not a fusellm training state", meta_path.string());
  // Checkpoints written before the file table existed have none; every later one is verified whole.
  if (meta.contains("files")) verify_file_table(checkpoint_dir, meta["files"], meta_path.string());
  TrainState state;
  state.step = require_integer<int64_t>(meta.at("step"), meta_path.string() + ": step");
  state.total_steps = require_integer<int64_t>(meta.at("total_steps"), meta_path.string() + ": total_steps");
  state.loader_position = meta.at("loader");
  state.config = meta.value("config", json());
  state.zero = meta.value("zero", json());
  if (state.zero.is_null()) {
    io::SafetensorsFile file(state_dir / "optimizer.safetensors");
    for (const auto& info : file.tensors()) state.optimizer.emplace_back(info.name, file.load(info.name));
  }
  if (fs::exists(state_dir / "rng_cpu.bin")) {
    const std::string bytes = read_file(state_dir / "rng_cpu.bin");
    state.rng_state = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
    std::memcpy(state.rng_state.data_ptr(), bytes.data(), bytes.size());
  }
  return state;
}

}  // namespace

TrainState load_train_state(const fs::path& checkpoint_dir) {
  const fs::path meta_path = checkpoint_dir / "trainer_state" / "state.json";
  return with_json_errors(meta_path.string(), [&] { return load_train_state_checked(checkpoint_dir); });
}

}  // namespace fusellm::train
