#pragma once
// Helpers for the infer tests (test_teacher and test_cli): a small chunk dataset cut from real text by the
// prepare API, an experiment config for the CLI, and whole-directory byte comparison.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_paths.hpp"
#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/experiment_config.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::test {

inline fs::path stories_model_dir() { return shared_dir() / "data" / "models" / "stories260K-hf"; }

// A small corpus: the TinyStories sample (5 stories, `<|endoftext|>`-separated) plus the first paragraphs of
// tiny Shakespeare, written into `dir` (scratch space, never the repository).
inline fs::path write_small_corpus(const fs::path& dir, size_t shakespeare_bytes = 1500) {
  const fs::path corpus = shared_dir() / "data" / "corpus";
  std::string text = read_file(corpus / "tinystories_sample.txt");
  std::string shakespeare = read_file(corpus / "tinyshakespeare.txt").substr(0, shakespeare_bytes);
  shakespeare = shakespeare.substr(0, shakespeare.rfind('\n'));  // whole lines only
  text += "\n<|endoftext|>\n" + shakespeare + "\n";
  const fs::path file = dir / "corpus.txt";
  std::ofstream(file, std::ios::binary) << text;
  return file;
}

// Cuts `corpus` into chunks of at most `max_length` tokens (with BOS/EOS as given) for one tokenizer.
inline data::ChunkManifest make_chunk_dataset(const fs::path& out_dir, const fs::path& corpus,
                                              const tok::Tokenizer& tokenizer, int64_t max_length, bool add_bos,
                                              bool add_eos, const std::string& model_name = "stories") {
  data::PrepareOptions o;
  o.corpus = {corpus.string()};
  o.corpus_options.txt_mode = TxtMode::Separator;
  o.out_dir = out_dir;
  o.max_length = max_length;
  o.shard_chunks = 16;
  o.threads = 1;
  o.progress = false;
  data::PrepareModel m;
  m.tokenizer = &tokenizer;
  m.info.name = model_name;
  m.info.role = "source";
  m.info.tokenizer_path = tokenizer.source();
  m.info.tokenizer_hash = tokenizer.hash();
  m.info.add_bos = add_bos;
  m.info.add_eos = add_eos;
  o.models.push_back(m);
  return data::prepare_chunk_dataset(o).manifest;
}

// An experiment config file for the CLI: one model (the target: a config needs one), the given chunk and store
// directories.
inline fs::path write_infer_config(const fs::path& file, const fs::path& model_dir, const fs::path& corpus,
                                   const fs::path& chunk_dir, const fs::path& store_dir, int64_t max_length,
                                   int64_t shard_records, int64_t batch_tokens = 256,
                                   const std::string& model_name = "stories") {
  json config = {
      {"models", json::array({{{"name", model_name}, {"path", model_dir.string()}, {"role", "target"}}})},
      {"data", {{"corpus", corpus.string()}, {"txt_mode", "separator"}, {"chunk_dir", chunk_dir.string()},
                {"max_length", max_length}}},
      {"infer", {{"store_dir", store_dir.string()}, {"top_k", 10}, {"batch_tokens", batch_tokens},
                 {"dtype", "auto"}, {"add_bos", false}, {"add_eos", true}, {"shard_records", shard_records}}}};
  std::ofstream(file) << config.dump(2) << "\n";
  return file;
}

inline std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// file name -> bytes of every regular file in a directory (not recursive).
inline std::map<std::string, std::string> files_of(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out[e.path().filename().string()] = bytes_of(e.path());
  return out;
}

}  // namespace fusellm::test
