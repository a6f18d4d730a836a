#pragma once
// Source-model inference (`fusellm infer`): runs one model over a chunk dataset and keeps, per position, the
// top-k log-probabilities and the log-prob of the actual next token in a logit store (logit_store.hpp).
// Chunks are batched by length (no padding to max_length), the forward pass runs on the model's device, only
// the top-k values come back to the host, and a writer thread stores them while the next batch computes.
// Resumable per shard; data-parallel over ranks through files only. Reference: docs/formats.md.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fusellm/data/chunk_dataset.hpp"
#include "fusellm/model/causal_lm.hpp"
#include "fusellm/teacher/logit_store.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "fusellm/util/dist_env.hpp"
#include "fusellm/util/experiment_config.hpp"

namespace fusellm::teacher {

struct InferSettings {
  uint32_t top_k = 10;
  int64_t batch_tokens = 16384;        // rows × longest row of a batch stays within this (a longer chunk goes alone)
  std::optional<bool> add_bos;         // nullopt: the tokenizer config's add_bos_token
  bool add_eos = true;                 // EOS appended to every chunk (prepare reserved room for it)
  LogprobDtype logprob_dtype = LogprobDtype::F16;
  uint64_t shard_records = 4096;       // chunks per store shard
  size_t queue_batches = 4;            // computed batches waiting for the writer thread at most
  double merge_timeout_seconds = 24 * 3600.0;  // rank 0: how long to wait for the other ranks' part files
  bool progress = true;
  // Test hooks (crash simulation): raise SIGKILL once this process has committed this many shards / added
  // this many records in total. 0 = off.
  uint64_t kill_after_shards = 0;
  uint64_t kill_after_records = 0;
};

struct InferResult {
  fs::path store_dir;
  bool already_complete = false;  // a finished store with the same settings was there; nothing was run
  uint64_t shards_owned = 0;      // shards this rank is responsible for
  uint64_t shards_resumed = 0;    // owned shards an earlier run had already committed
  uint64_t shards_written = 0;
  uint64_t chunks = 0;            // chunks computed by this process
  uint64_t tokens = 0;            // positions computed by this process
  double seconds = 0;             // wall time of the compute loop
  bool merged = false;            // this process wrote manifest.json
};

// The token ids infer feeds the model for one chunk: [BOS] + encode(text, no specials) + [EOS].
std::vector<int32_t> chunk_token_ids(const tok::Tokenizer& tokenizer, const std::string& text, bool add_bos,
                                     bool add_eos);

// Length-bucketed batching: `lengths[i]` is row i's length. Rows are sorted by length (longest first, ties by
// index) and packed greedily so that rows × longest ≤ batch_tokens. Returns batches of row indices.
std::vector<std::vector<size_t>> plan_length_batches(const std::vector<size_t>& lengths, int64_t batch_tokens);

// The top-k of one batch, on the host, packed over the real positions of every row in order (row 0's
// positions, then row 1's, …): P = Σ lengths. Log-probs are fp32 (log_softmax computed in fp32).
struct BatchTopK {
  std::vector<int64_t> lengths;  // per row
  at::Tensor topk_logprobs;      // [P, k] float32, CPU
  at::Tensor topk_ids;           // [P, k] int32, CPU
  at::Tensor next_logprobs;      // [P] float32, CPU; a row's last position holds 0 (it has no next token)
  std::function<void()> wait;    // blocks until the (asynchronous) device→host copies have landed; may be empty
};

// Runs the model on `rows` (right-padded to the longest row, or to `pad_to` when larger) with an attention
// mask, and computes per real position the top-k log-probs and the next token's log-prob on the model's
// device; only those come back (pinned memory, non_blocking, on CUDA). Call result.wait() before reading.
BatchTopK compute_batch_topk(model::CausalLM& model, const std::vector<std::vector<int32_t>>& rows, uint32_t k,
                             int64_t pad_to = 0);

// Throws a clear Error when `dir` holds (part of) a store made from another tokenizer, another chunk dataset
// or with other settings than `info`. Returns true when `dir` holds a finished store of exactly `info` that
// covers `expected_records` chunks (nothing to do).
bool check_existing_store(const fs::path& dir, const StoreInfo& info, uint64_t expected_records);

// Runs one model over the dataset into `store_dir`: this rank's shards (j % world_size == rank), skipping
// committed ones; then finish(); rank 0 waits for every rank's part file and merges the manifest.
InferResult infer_logit_store(model::CausalLM& model, const tok::Tokenizer& tokenizer,
                              const data::ChunkDataset& dataset, const std::string& model_name,
                              const fs::path& model_path, const fs::path& store_dir, const InferSettings& settings,
                              const RankInfo& rank);

// ---- driven by the experiment config (what `fusellm infer` runs) ----

struct InferRunOptions {
  std::string device;  // "" = cuda:LOCAL_RANK when CUDA is available, else cpu; or "cpu", "cuda", "cuda:N"
  RankInfo rank;       // usually rank_info_from_env()
  bool progress = true;
  double merge_timeout_seconds = 24 * 3600.0;               // see InferSettings
  uint64_t kill_after_shards = 0, kill_after_records = 0;  // test hooks, see InferSettings
};

InferSettings infer_settings_from_config(const InferConfig& config);
fs::path model_store_dir(const ExperimentConfig& config, const std::string& model_name);

// Opens the chunk dataset named by the config; a clear Error when it is missing or unfinished.
data::ChunkDataset open_chunk_dataset_for_infer(const ExperimentConfig& config);

// Loads model `model_name` (dtype per infer.dtype: auto = fp32 on CPU, bf16 on CUDA) and its tokenizer, and
// runs infer_logit_store into infer.store_dir/<model_name>.
InferResult infer_model_from_config(const ExperimentConfig& config, const data::ChunkDataset& dataset,
                                    const std::string& model_name, const InferRunOptions& options);

}  // namespace fusellm::teacher
