// ModelRunner::generate_until: greedy or sampled generation in batches with per-row stops (see
// model_runner.hpp).
//
// Prompts of similar lengths run together, left-padded (attention mask and per-row positions, so every
// row sees exactly its own tokens at its own positions); each step feeds every unfinished row's last
// token on the KV cache. A row leaves the batch as soon as it stops (EOS, a stop sequence, its own
// max_new_tokens or the context's end): the cache rows of the rest are kept, so finished rows cost
// nothing. Mathematically each row is generated as it would be alone; in float32 the batched matmuls
// may round differently (as HF's batched generate does), in float64 the tokens are the same (tested).
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <numeric>
#include <optional>

#include "fusellm/eval/model_runner.hpp"
#include "fusellm/eval/py_text.hpp"
#include "fusellm/model/generate.hpp"
#include "tensor_helpers.hpp"

namespace fusellm::eval {

namespace {

using detail::long_tensor;
using detail::widen;

// Rows batched together have prompts ≥ half as long as the batch's longest: left padding costs only in the
// prefill and in attention over padded keys, while every row batched saves a forward per decoding step.
constexpr int64_t kSimilarPercent = 50;

bool ends_with(const std::vector<int64_t>& v, const std::vector<int64_t>& tail) {
  return v.size() >= tail.size() && std::equal(tail.begin(), tail.end(), v.end() - int64_t(tail.size()));
}

struct Row {
  size_t request;                          // index into the caller's list
  std::vector<int64_t> prompt, generated;  // token ids
  std::vector<std::vector<int64_t>> stops; // the last ≤ 2 ids of each stop string's encoding
  std::vector<std::string> text_stops;     // stop_on_text: the stop strings themselves
  int max_new = 0;
  bool truncated = false;
  size_t prompt_chars = std::string::npos;  // code points of the decoded prompt, once computed
  model::SamplingOptions sampling;           // temperature 0 = greedy
  std::optional<at::Generator> generator;    // sampled rows: their own stream (Request::sampling_seed)
};

// The continuation as open-instruct decodes it: decode(prompt + generated), special tokens skipped, less
// the decoded prompt's code points (Python slices by code points). Decoding the whole keeps a metaspace
// tokenizer's leading-space rule what it is in the full text.
std::string continuation_text(const tok::Tokenizer& tokenizer, Row& row) {
  std::vector<int32_t> full32(row.prompt.begin(), row.prompt.end());
  if (row.prompt_chars == std::string::npos) row.prompt_chars = code_points(tokenizer.decode(full32, true));
  full32.insert(full32.end(), row.generated.begin(), row.generated.end());
  const std::string full_text = tokenizer.decode(full32, true);
  size_t skip = 0;
  for (size_t seen = 0; skip < full_text.size(); ++skip) {
    if ((static_cast<unsigned char>(full_text[skip]) & 0xC0) != 0x80) {
      if (seen == row.prompt_chars) break;
      ++seen;
    }
  }
  return full_text.substr(skip);
}

// Byte offset of the earliest stop string in text, npos when none occurs.
size_t first_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t at = std::string::npos;
  for (const auto& s : stops) at = std::min(at, text.find(s));
  return at;
}

}  // namespace

Result ModelRunner::generate_until(const Request& request) { return generate_until(std::vector<const Request*>{&request})[0]; }

std::vector<Result> ModelRunner::generate_until(const std::vector<const Request*>& requests) {
  at::NoGradGuard no_grad;
  std::vector<Row> rows(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& request = *requests[i];
    Row& row = rows[i];
    row.request = i;
    row.max_new = request.max_new_tokens;
    row.prompt = widen(tokenizer_.encode_ids(request.context, request.add_bos));
    // Too long for the context with the new tokens: keep the prompt's end, leaving room for max_new_tokens as
    // lm-eval's generate_until does, but never less than half the context for the prompt.
    const int64_t keep = std::max(max_length_ - int64_t(row.max_new), max_length_ / 2);
    if (int64_t(row.prompt.size()) > keep && int64_t(row.prompt.size()) + row.max_new > max_length_) {
      row.prompt.erase(row.prompt.begin(), row.prompt.end() - keep);
      row.truncated = true;
    }
    if (request.max_length > 0) {
      // The harness's max_length_generation: the prompt tokenized with truncation (left) to it, and HF's
      // max_length = prompt + generation; a prompt that fills it generates nothing.
      if (int64_t(row.prompt.size()) > request.max_length) {
        row.prompt.erase(row.prompt.begin(), row.prompt.end() - request.max_length);
        row.truncated = true;
      }
      row.max_new = int(std::min<int64_t>(row.max_new, request.max_length - int64_t(row.prompt.size())));
    }
    if (request.temperature > 0) {
      row.sampling.temperature = request.temperature;
      row.sampling.top_p = request.top_p;
      row.sampling.top_k = request.top_k;
      row.generator = at::make_generator<at::CPUGeneratorImpl>(request.sampling_seed());
    }
    if (request.stop_on_text) {
      row.text_stops = request.stops;
      continue;
    }
    for (const auto& s : request.stops) {
      auto ids = widen(tokenizer_.encode_ids(s, false));
      if (ids.size() > 2) ids.erase(ids.begin(), ids.end() - 2);  // open-instruct: the last ≤ 2 ids
      if (!ids.empty()) row.stops.push_back(ids);
    }
  }
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].prompt.size() > rows[b].prompt.size(); });

  for (size_t begin = 0; begin < order.size();) {
    // A batch: up to generate_batch prompts of similar lengths whose prompts and new tokens fit the budget.
    const int64_t width = int64_t(rows[order[begin]].prompt.size());
    int64_t longest_new = rows[order[begin]].max_new;
    size_t end = begin + 1;
    while (end < order.size() && int64_t(end - begin) < options_.generate_batch &&
           int64_t(rows[order[end]].prompt.size()) * 100 >= width * kSimilarPercent &&
           int64_t(end - begin + 1) * (width + std::max<int64_t>(longest_new, rows[order[end]].max_new)) <= options_.batch_tokens) {
      longest_new = std::max<int64_t>(longest_new, rows[order[end]].max_new);
      ++end;
    }
    std::vector<Row*> active;
    for (size_t i = begin; i < end; ++i) active.push_back(&rows[order[i]]);
    std::vector<const std::vector<int64_t>*> prompts;
    for (const Row* row : active) prompts.push_back(&row->prompt);
    const detail::LeftPadded batch = detail::left_pad(prompts, width);
    model::KVCache cache;
    cache.reserve(longest_new);  // decoding appends in place
    at::Tensor hidden = run(batch.ids, batch.mask, batch.positions, &cache, 1);  // [n, 1, H]
    while (!active.empty()) {
      const at::Tensor logits = model_.logits_from_hidden(hidden.select(1, 0));
      at::Tensor next = logits.argmax(-1).cpu().contiguous();
      int64_t* next_id = next.data_ptr<int64_t>();
      for (size_t r = 0; r < active.size(); ++r)
        if (active[r]->generator) {
          // On the CPU: the draw depends on the row's logits and its own generator only.
          next_id[r] = model::pick_next_token(logits[int64_t(r)].to(at::kCPU), active[r]->sampling,
                                              *active[r]->generator);
        }
      std::vector<int64_t> keep;  // rows that go on
      for (size_t r = 0; r < active.size(); ++r) {
        Row& row = *active[r];
        if (row.max_new <= 0) continue;
        row.generated.push_back(next_id[r]);
        bool stopped = next_id[r] == eos_;
        for (const auto& s : row.stops) stopped = stopped || ends_with(row.generated, s);
        if (!stopped && !row.text_stops.empty())
          stopped = first_stop(continuation_text(tokenizer_, row), row.text_stops) != std::string::npos;
        if (!stopped && int64_t(row.prompt.size() + row.generated.size()) >= max_length_) {
          row.truncated = true;  // the context is full
          stopped = true;
        }
        stopped = stopped || int64_t(row.generated.size()) >= row.max_new;
        if (!stopped) keep.push_back(int64_t(r));
      }
      if (keep.empty()) break;
      if (keep.size() < active.size()) {
        // Drop the finished rows from the batch and from the cache.
        cache = cache.rows(at::tensor(keep, at::kLong));
        std::vector<Row*> still;
        for (int64_t r : keep) still.push_back(active[size_t(r)]);
        active.swap(still);
      }
      std::vector<int64_t> step_ids, step_pos;
      for (const Row* row : active) {
        step_ids.push_back(row->generated.back());
        step_pos.push_back(int64_t(row->prompt.size() + row->generated.size()) - 1);
      }
      const int64_t m = int64_t(active.size());
      hidden = run(long_tensor(step_ids, {m, 1}), at::ones({m, 1}, at::kLong), long_tensor(step_pos, {m, 1}), &cache, 1);
    }
    begin = end;
  }

  std::vector<Result> out(rows.size());
  for (Row& row : rows) {
    Result& result = out[row.request];
    result.truncated = row.truncated;
    result.tokens = int64_t(row.generated.size());
    // Cut at the first occurrence of a stop sequence (and at EOS), then decode as open-instruct does.
    auto& generated = row.generated;
    size_t cut = generated.size();
    for (const auto& s : row.stops)
      for (size_t i = 0; i + s.size() <= generated.size(); ++i)
        if (std::equal(s.begin(), s.end(), generated.begin() + int64_t(i))) {
          cut = std::min(cut, i);
          break;
        }
    generated.resize(cut);
    result.text = continuation_text(tokenizer_, row);
    if (!row.text_stops.empty()) result.text = result.text.substr(0, first_stop(result.text, row.text_stops));
  }
  return out;
}

}  // namespace fusellm::eval
