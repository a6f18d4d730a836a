// bench_infer: source-model inference throughput for stories260K on CPU over a real corpus sample (tiny
// Shakespeare paragraphs, cut by the prepare API), comparing
//   - length-bucketed batches (infer's way): compute only, and the whole `infer` with the logit store written;
//   - every batch padded to max_length with full-vocabulary logits, log_softmax and top-k at every position
//     (the official FuseLLM recipe's shape of work), compute only;
// and the store's bytes/token. Usage: bench_infer [corpus_bytes=200000] [max_length=512] [batch_tokens=8192].
#include <ATen/Parallel.h>
#include "bench_args.hpp"
#include "fusellm/util/allocator.hpp"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/teacher/infer.hpp"
#include "fusellm/util/log.hpp"

using namespace fusellm;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int run(int argc, char** argv) {
  fusellm::tune_allocator_for_tensors();
  fusellm::bench::check_arg_count("bench_infer", argc, 3, "[corpus_bytes=200000] [max_length=512] [batch_tokens=8192]");
  const size_t corpus_bytes = size_t(fusellm::bench::int_arg(argc, argv, 1, "corpus bytes", 200000, 1000));
  const int64_t max_length = fusellm::bench::int_arg(argc, argv, 2, "max_length", 512, 8);
  const int64_t batch_tokens = fusellm::bench::int_arg(argc, argv, 3, "batch tokens", 8192, max_length);
  const fs::path shared = fs::path(FUSELLM_SOURCE_DIR).parent_path() / "shared";
  if (!fs::exists(shared / "data")) {
    std::cout << "bench_infer: skipped: ../shared (test material beside the checkout) not found\n";
    return 0;
  }
  spdlog::set_level(spdlog::level::warn);

  const fs::path model_dir = shared / "data/models/stories260K-hf";
  const fs::path work = fs::temp_directory_path() / ("fusellm_bench_infer_" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work);
  {
    std::string text;
    std::ifstream in(shared / "data/corpus/tinyshakespeare.txt", std::ios::binary);
    text.resize(corpus_bytes);
    in.read(text.data(), static_cast<std::streamsize>(corpus_bytes));
    text.resize(static_cast<size_t>(in.gcount()));
    text = text.substr(0, text.rfind("\n\n"));
    std::ofstream(work / "corpus.txt", std::ios::binary) << text << "\n";
  }

  auto tokenizer = tok::load_tokenizer(model_dir);
  io::LoadOptions load;
  load.dtype = at::kFloat;
  auto model = model::load_model(model_dir, load);

  data::PrepareOptions prep;
  prep.corpus = {(work / "corpus.txt").string()};
  prep.out_dir = work / "chunks";
  prep.max_length = max_length;
  prep.progress = false;
  data::PrepareModel pm;
  pm.tokenizer = tokenizer.get();
  pm.info.name = "stories260K";
  pm.info.role = "source";
  pm.info.tokenizer_hash = tokenizer->hash();
  pm.info.add_bos = false;
  pm.info.add_eos = true;
  prep.models.push_back(pm);
  data::prepare_chunk_dataset(prep);
  const auto dataset = data::ChunkDataset::open(work / "chunks");

  std::vector<std::vector<int32_t>> rows;
  std::vector<size_t> lengths;
  uint64_t tokens = 0;
  for (uint64_t id = 0; id < dataset.size(); ++id) {
    rows.push_back(teacher::chunk_token_ids(*tokenizer, dataset.at(id).text, false, true));
    lengths.push_back(rows.back().size());
    tokens += rows.back().size();
  }
  std::printf("corpus: tiny Shakespeare, %zu bytes, paragraphs -> %zu chunks, %llu tokens (mean %.1f, max_length "
              "%lld), batch_tokens %lld, torch threads %d\n",
              corpus_bytes, rows.size(), static_cast<unsigned long long>(tokens), double(tokens) / rows.size(),
              static_cast<long long>(max_length), static_cast<long long>(batch_tokens), at::get_num_threads());
  const uint32_t k = 10;

  // 1. Length-bucketed batches, compute only (what infer's compute loop does per shard).
  auto start = std::chrono::steady_clock::now();
  for (const auto& batch : teacher::plan_length_batches(lengths, batch_tokens)) {
    std::vector<std::vector<int32_t>> b;
    for (size_t i : batch) b.push_back(rows[i]);
    teacher::BatchTopK out = teacher::compute_batch_topk(*model, b, k);
    if (out.wait) out.wait();
  }
  const double bucketed = seconds_since(start);

  // 2. Every batch padded to max_length; full logits, log_softmax and top-k at every position (padding included).
  start = std::chrono::steady_clock::now();
  {
    at::NoGradGuard no_grad;
    const int64_t per_batch = std::max<int64_t>(1, batch_tokens / max_length);
    for (size_t first = 0; first < rows.size(); first += per_batch) {
      const size_t n = std::min<size_t>(per_batch, rows.size() - first);
      at::Tensor ids = at::zeros({static_cast<int64_t>(n), max_length}, at::kLong);
      at::Tensor mask = at::zeros({static_cast<int64_t>(n), max_length}, at::kLong);
      auto ids_a = ids.accessor<int64_t, 2>();
      auto mask_a = mask.accessor<int64_t, 2>();
      for (size_t r = 0; r < n; ++r)
        for (size_t t = 0; t < rows[first + r].size(); ++t) {
          ids_a[r][t] = rows[first + r][t];
          mask_a[r][t] = 1;
        }
      model::ForwardArgs args;
      args.input_ids = ids;
      args.attention_mask = mask;
      at::Tensor lp = at::log_softmax(model->forward(args), -1);
      auto top = lp.topk(k, -1);
      at::Tensor host_values = std::get<0>(top).contiguous(), host_ids = std::get<1>(top).contiguous();
      (void)host_values;
      (void)host_ids;
    }
  }
  const double padded = seconds_since(start);

  // 3. The whole infer: tokenization, bucketed compute, writer thread, shard commits, manifest.
  teacher::InferSettings settings;
  settings.top_k = k;
  settings.batch_tokens = batch_tokens;
  settings.add_bos = false;
  settings.add_eos = true;
  settings.shard_records = 4096;
  settings.progress = false;
  RankInfo rank;
  start = std::chrono::steady_clock::now();
  teacher::infer_logit_store(*model, *tokenizer, dataset, "stories260K", model_dir, work / "store", settings, rank);
  const double full = seconds_since(start);
  const teacher::StoreStats stats = teacher::compute_store_stats(teacher::LogitStoreReader(work / "store"));

  std::printf("length-bucketed compute        %8.3f s  %10.0f tok/s\n", bucketed, tokens / bucketed);
  std::printf("padded to max_length (official)%8.3f s  %10.0f tok/s  (%.1fx slower)\n", padded, tokens / padded,
              padded / bucketed);
  std::printf("infer end to end (store write) %8.3f s  %10.0f tok/s\n", full, tokens / full);
  std::printf("store: %llu records, %llu tokens, %llu bytes, %.2f bytes/token (k=%u, u16 ids, f16 log-probs); "
              "mean CE %.4f, top-%u mass %.4f\n",
              static_cast<unsigned long long>(stats.records), static_cast<unsigned long long>(stats.tokens),
              static_cast<unsigned long long>(stats.bytes), stats.bytes_per_token, stats.k, stats.mean_ce, k,
              stats.mean_topk_mass);
  fs::remove_all(work);
  return 0;
}

int main(int argc, char** argv) {
  return fusellm::bench::guarded_main("bench_infer", [&] { return run(argc, argv); });
}
