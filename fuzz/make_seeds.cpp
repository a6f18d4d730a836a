// Builds the fuzz targets' seed corpora from the real files in ../shared (never committed: written into the
// build directory). Large real files are trimmed to what keeps a seed fast to mutate but still real: a
// tokenizer.json keeps its normalizer, pre-tokenizer regexes, decoder and post-processor with the first
// few hundred vocabulary entries and the merges among them. Checkpoints are tiny random models of every
// family written by the product's own writers (safetensors, sharded safetensors, torch .bin). The stores
// (chunk dataset, logit store, aligned store, trainer state) come from a tiny `fusellm run` in seeds.sh.
//   fuzz_make_seeds SHARED_DIR REPO_DIR OUT_DIR
#include <zlib.h>
#include <zstd.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "fusellm/eval/task.hpp"
#include "fusellm/io/checkpoint.hpp"
#include "fusellm/io/safetensors.hpp"
#include "fusellm/model/random_init.hpp"
#include "fusellm/util/error.hpp"
#include "fusellm/util/json.hpp"
#include "fuzz_support.hpp"

namespace fusellm::fuzz {
namespace {

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  FUSELLM_CHECK(in, "{}: cannot read", path.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void put(const fs::path& out, const std::string& target, const std::string& name, std::string_view bytes) {
  write_bytes(out / target / name, bytes);
}

std::string section(const std::string& name, std::string_view body, bool first = false) {
  return (first ? "" : "\n") + std::string("#@ ") + name + "\n" + std::string(body);
}

// Sample texts: llama.cpp's tokenizer test strings (separated by its marker line), trimmed to a few.
std::vector<std::string> sample_texts(const fs::path& shared) {
  std::vector<std::string> texts;
  const std::string all = read_all(shared / "data/tokenizers/gguf-vocab/ggml-vocab-gpt-2.gguf.inp");
  const std::string marker = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (pos < all.size() && texts.size() < 12) {
    size_t end = all.find(marker, pos);
    if (end == std::string::npos) end = all.size();
    if (end > pos) texts.push_back(all.substr(pos, end - pos));
    pos = end + marker.size();
  }
  return texts;
}

// A BPE tokenizer.json with only ids < keep (and the merges among them); the rest of the pipeline intact.
std::string trim_tokenizer_json(const fs::path& path, int64_t keep) {
  json doc = parse_json_file(path);
  json& model = doc["model"];
  std::set<std::string> kept;
  json vocab = json::object();
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
    if (it.value().get<int64_t>() < keep) {
      vocab[it.key()] = it.value();
      kept.insert(it.key());
    }
  model["vocab"] = vocab;
  json merges = json::array();
  for (const json& merge : model["merges"]) {
    std::string a, b;
    if (merge.is_string()) {
      const std::string m = merge.get<std::string>();
      const size_t space = m.find(' ');
      if (space == std::string::npos) continue;
      a = m.substr(0, space), b = m.substr(space + 1);
    } else {
      a = merge[0].get<std::string>(), b = merge[1].get<std::string>();
    }
    if (kept.count(a) && kept.count(b) && kept.count(a + b)) merges.push_back(merge);
  }
  model["merges"] = merges;
  json added = json::array();
  for (const json& token : doc["added_tokens"])
    if (token["id"].get<int64_t>() < keep) added.push_back(token);
  doc["added_tokens"] = added;
  return doc.dump();
}

void tokenizer_seeds(const fs::path& shared, const fs::path& repo, const fs::path& out) {
  const auto texts = sample_texts(shared);
  int n = 0;
  for (const char* file : {"gpt-neox-20b/20B_tokenizer.json", "qwen2/tokenizer.json"}) {
    const std::string trimmed = trim_tokenizer_json(shared / "data/tokenizers" / file, 400);
    for (size_t t = 0; t < texts.size(); t += 3)
      put(out, "tokenizer_json", "seed-" + std::to_string(n++),
          section("tokenizer.json", trimmed, true) + section("text", texts[t]));
  }
  // GPT-2's two files, trimmed the same way.
  const json vocab_full = parse_json_file(shared / "data/tokenizers/gpt2/gpt2_vocab.json");
  json vocab = json::object();
  std::set<std::string> kept;
  for (auto it = vocab_full.begin(); it != vocab_full.end(); ++it)
    if (it.value().get<int64_t>() < 400) vocab[it.key()] = it.value(), kept.insert(it.key());
  std::istringstream merges_in(read_all(shared / "data/tokenizers/gpt2/gpt2_merges.txt"));
  std::string merges, line;
  while (std::getline(merges_in, line)) {
    const size_t space = line.find(' ');
    const bool keep = line.rfind("#version", 0) == 0 ||
                      (space != std::string::npos && kept.count(line.substr(0, space)) &&
                       kept.count(line.substr(space + 1)) && kept.count(line.substr(0, space) + line.substr(space + 1)));
    if (keep) merges += line + "\n";
  }
  const std::string config = read_all(repo / "configs/models/endoftext-tokenizer_config.json");
  for (size_t t = 0; t < texts.size(); t += 4)
    put(out, "gpt2_files", "seed-" + std::to_string(t),
        section("vocab.json", vocab.dump(), true) + section("merges.txt", merges) + section("text", texts[t]) +
            (t == 0 ? section("tokenizer_config.json", config) : ""));
  // SentencePiece: the real models whole (stories260K's 512 pieces; Llama-2's 32000).
  put(out, "sentencepiece", "tok512.model", read_all(shared / "data/models/stories260K/tok512.model"));
  put(out, "sentencepiece", "llama2.model", read_all(shared / "data/tokenizers/llama2/tokenizer.model"));
  for (size_t t = 0; t < texts.size(); t += 4)
    put(out, "sentencepiece", "tok512-text-" + std::to_string(t),
        section("tokenizer.model", read_all(shared / "data/models/stories260K/tok512.model"), true) +
            section("text", texts[t]));
}

// Tiny random models of every family: config.json, and the weights as safetensors, shards and .bin.
void model_seeds(const fs::path& shared, const fs::path& out) {
  const std::vector<json> configs = {
      {{"model_type", "llama"}, {"vocab_size", 32}, {"hidden_size", 8}, {"intermediate_size", 16},
       {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"num_hidden_layers", 2}, {"max_position_embeddings", 64},
       {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", false}},
      {{"model_type", "gpt_neox"}, {"vocab_size", 32}, {"hidden_size", 8}, {"intermediate_size", 16},
       {"num_attention_heads", 2}, {"num_hidden_layers", 1}, {"max_position_embeddings", 64}, {"rotary_pct", 0.5},
       {"hidden_act", "gelu"}, {"use_parallel_residual", true}, {"layer_norm_eps", 1e-5}},
      {{"model_type", "mpt"}, {"vocab_size", 32}, {"d_model", 8}, {"n_heads", 2}, {"n_layers", 1},
       {"expansion_ratio", 2}, {"max_seq_len", 64}, {"no_bias", true}, {"attn_config", {{"alibi", true}}}},
      {{"model_type", "qwen2"}, {"vocab_size", 32}, {"hidden_size", 8}, {"intermediate_size", 16},
       {"num_attention_heads", 2}, {"num_key_value_heads", 2}, {"num_hidden_layers", 1}, {"max_position_embeddings", 64}},
  };
  put(out, "model_config", "stories260K-config.json", read_all(shared / "data/models/stories260K-hf/config.json"));
  for (size_t i = 0; i < configs.size(); ++i) {
    const std::string family = configs[i]["model_type"].get<std::string>();
    const fs::path dir = scratch_root() / ("model-" + family);
    model::write_random_model(dir, configs[i], 7 + i);
    const std::string config = read_all(dir / "config.json"), weights = read_all(dir / "model.safetensors");
    put(out, "model_config", family + "-config.json", config);
    put(out, "model_config", family + "-with-weights",
        section("config.json", config, true) + section("model.safetensors", weights));
    put(out, "safetensors", family + ".safetensors", weights);
    auto reader = io::open_checkpoint(dir);
    io::NamedTensors tensors;
    std::map<std::string, at::Tensor> by_name;
    for (const std::string& name : reader->names()) {
      tensors.emplace_back(name, reader->load(name, {}));
      by_name[name] = tensors.back().second;
    }
    const fs::path sharded = scratch_root() / ("sharded-" + family);
    std::string bundle;
    for (const std::string& file : io::save_sharded_safetensors(sharded, tensors, 1024))
      bundle += section(file, read_all(sharded / file), bundle.empty());
    bundle += section("model.safetensors.index.json", read_all(sharded / "model.safetensors.index.json"));
    put(out, "safetensors", family + "-sharded", bundle);
    io::save_torch_bin(scratch_root() / (family + ".bin"), by_name);
    put(out, "torch_bin", family + ".bin", read_all(scratch_root() / (family + ".bin")));
  }
}

std::string gzip(const std::string& bytes) {
  z_stream z{};
  FUSELLM_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "gzip: init failed");
  std::string out(deflateBound(&z, bytes.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  FUSELLM_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "gzip: deflate failed");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd(const std::string& bytes) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 3));
  return out;
}

void corpus_seeds(const fs::path& shared, const fs::path& repo, const fs::path& out) {
  std::string text = read_all(shared / "data/corpus/tinystories_sample.txt").substr(0, 3000);
  std::string jsonl;
  for (size_t pos = 0; pos < text.size(); pos += 500)
    jsonl += json{{"text", text.substr(pos, 500)}, {"meta", {{"n", pos}}}}.dump() + "\n";
  put(out, "corpus", "jsonl", std::string(1, '\0') + jsonl);
  put(out, "corpus", "jsonl-skip", std::string(1, '\x08') + jsonl + "{not json\n");
  put(out, "corpus", "jsonl-gz", std::string(1, '\1') + gzip(jsonl));
  put(out, "corpus", "jsonl-zst", std::string(1, '\2') + zstd(jsonl));
  for (const auto& entry : fs::directory_iterator(repo / "tests/data/fixtures/parquet"))
    if (entry.path().extension() == ".parquet")
      put(out, "corpus", entry.path().filename().string(), std::string(1, '\3') + read_all(entry.path()));
  for (char mode = 4; mode < 8; ++mode)
    put(out, "corpus", "text-" + std::to_string(int(mode)),
        std::string(1, mode) + text.substr(0, 1200) + (mode == 7 ? "\n<|endoftext|>\nafter\n" : ""));
}

// One seed per task (a few BBH subtasks and MultiPL-E languages stand for the rest): its own data, cut short.
void eval_seeds(const fs::path& shared, const fs::path& out) {
  const std::vector<std::string> tasks = eval::task_names();
  auto index_of = [&](const std::string& name) {
    return char(std::find(tasks.begin(), tasks.end(), name) - tasks.begin());
  };
  for (const std::string& name : tasks) {
    auto task = eval::make_task(name);
    const fs::path data = task->default_data(shared / "data");
    std::string body;
    if (name.rfind("bbh_", 0) == 0) {
      if (name != "bbh_boolean_expressions" && name != "bbh_date_understanding" && name != "bbh_word_sorting") continue;
      const std::string sub = name.substr(4);
      json examples = parse_json_file(data / "bbh" / (sub + ".json"));
      examples["examples"] = json(std::vector<json>(examples["examples"].begin(), examples["examples"].begin() + 3));
      body = section("bbh/" + sub + ".json", examples.dump(), true) +
             section("cot-prompts/" + sub + ".txt", read_all(data / "cot-prompts" / (sub + ".txt")));
    } else if (name.rfind("multiple_", 0) == 0 || name.rfind("humaneval", 0) == 0) {
      if (!fs::is_regular_file(data) || data.extension() != ".json") continue;
      const json all = parse_json_file(data);
      body = json(std::vector<json>(all.begin(), all.begin() + std::min<size_t>(2, all.size()))).dump(1);
    } else if (fs::is_regular_file(data) && data.extension() == ".jsonl") {
      std::istringstream in(read_all(data));
      std::string line;
      for (int i = 0; i < 3 && std::getline(in, line); ++i) body += line + "\n";
    } else if (fs::is_regular_file(data)) {
      body = read_all(data).substr(0, 2000);
    } else {
      continue;
    }
    put(out, "eval_data", name, std::string(1, index_of(name)) + body);
  }
}

void config_seeds(const fs::path& repo, const fs::path& out) {
  for (const auto& entry : fs::directory_iterator(repo / "configs"))
    if (entry.path().extension() == ".json")
      put(out, "experiment_config", entry.path().filename().string(), read_all(entry.path()));
}

}  // namespace
}  // namespace fusellm::fuzz

int main(int argc, char** argv) {
  using namespace fusellm;
  if (argc != 4) {
    std::cerr << "usage: fuzz_make_seeds SHARED_DIR REPO_DIR OUT_DIR\n";
    return 2;
  }
  const fs::path shared = argv[1], repo = argv[2], out = argv[3];
  try {
    spdlog::set_level(spdlog::level::warn);
    fuzz::tokenizer_seeds(shared, repo, out);
    fuzz::model_seeds(shared, out);
    fuzz::corpus_seeds(shared, repo, out);
    fuzz::eval_seeds(shared, out);
    fuzz::config_seeds(repo, out);
  } catch (const std::exception& e) {
    std::cerr << "fuzz_make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
