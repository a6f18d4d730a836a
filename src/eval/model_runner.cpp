// ModelRunner: lm-eval's loglikelihood requests (pairwise or with shared contexts) and rolling
// log-likelihoods; generation is in model_runner_generate.cpp. See model_runner.hpp.
#include "fusellm/eval/model_runner.hpp"

#include <algorithm>
#include <map>

#include "fusellm/eval/py_text.hpp"
#include "fusellm/util/error.hpp"
#include "tensor_helpers.hpp"

namespace fusellm::eval {

namespace {

// Rows batched together have lengths ≥ kSimilar/10 of the batch's longest. Measured with bench_eval on
// ARC-Easy: 9 (58k padded tokens, 303 forwards) beat 5 (70k, 43) and 0 (75k, 35): padding costs more than
// extra forwards, for contexts and continuations alike.
constexpr int64_t kSimilar = 9;

using detail::long_tensor;
using detail::widen;

// Scores many positions with one LM-head pass: hidden2d [N, H]; entry i reads row rows[i], adds
// log p(targets[i]) to owners[i] and clears its greedy flag unless targets[i] is the argmax.
void score_positions(model::CausalLM& model, const at::Tensor& hidden2d, const std::vector<int64_t>& rows,
                     const std::vector<int64_t>& targets, const std::vector<Result*>& owners) {
  if (rows.empty()) return;
  const at::Tensor index = at::tensor(rows, at::kLong).to(hidden2d.device());
  const at::Tensor logits = model.logits_from_hidden(hidden2d.index_select(0, index));
  const at::Tensor logp = logits.to(logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat).log_softmax(-1);
  const at::Tensor idx = at::tensor(targets, at::kLong).to(logp.device()).unsqueeze(1);
  const at::Tensor picked = logp.gather(1, idx).squeeze(1).to(at::kDouble).cpu().contiguous();
  const at::Tensor argmax = logp.argmax(-1).cpu().contiguous();
  const double* p = picked.data_ptr<double>();
  const int64_t* a = argmax.data_ptr<int64_t>();
  for (size_t i = 0; i < rows.size(); ++i) {
    owners[i]->logprob += p[i];
    owners[i]->is_greedy = owners[i]->is_greedy && a[i] == targets[i];
  }
}

}  // namespace

ModelRunner::ModelRunner(model::CausalLM& model, const tok::Tokenizer& tokenizer, RunnerOptions options)
    : model_(model), tokenizer_(tokenizer), options_(options) {
  max_length_ = options_.max_length > 0 ? options_.max_length : model_.config().max_context;
  FUSELLM_CHECK(max_length_ > 1, "eval: max_length {} is too small", max_length_);
  if (tokenizer_.special_tokens().eos) eos_ = *tokenizer_.special_tokens().eos;
  else if (model_.config().eos_token_id) eos_ = *model_.config().eos_token_id;
}

EncodedPair ModelRunner::encode_pair(const Request& request) const {
  std::string context = request.context, continuation = request.continuation;
  EncodedPair out;
  if (options_.joint_encoding) {
    const size_t n = py_rstrip_length(context);
    continuation = context.substr(n) + continuation;
    context.resize(n);
  }
  if (context.empty()) {
    out.context = {eos_};  // lm-eval: end of text as context
    out.continuation = widen(tokenizer_.encode_ids(continuation, false));
  } else if (options_.joint_encoding) {
    const auto whole = widen(tokenizer_.encode_ids(context + continuation, false));
    out.context = widen(tokenizer_.encode_ids(context, false));
    if (whole.size() > out.context.size()) out.continuation.assign(whole.begin() + int64_t(out.context.size()), whole.end());
  } else {
    out.context = widen(tokenizer_.encode_ids(context, false));
    out.continuation = widen(tokenizer_.encode_ids(continuation, false));
  }
  if (options_.context_bos && tokenizer_.special_tokens().bos)
    out.context.insert(out.context.begin(), *tokenizer_.special_tokens().bos);
  FUSELLM_CHECK(!out.continuation.empty(), "eval: the continuation {} after context {} has no tokens of its own",
                json(request.continuation).dump(), json(request.context.substr(0, 60)).dump());
  return out;
}

at::Tensor ModelRunner::run(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& positions,
                            model::KVCache* cache, int64_t logits_to_keep) {
  model::ForwardArgs args;
  const auto device = model_.device();
  args.input_ids = ids.to(device);
  if (mask.defined()) args.attention_mask = mask.to(device);
  if (positions.defined()) args.position_ids = positions.to(device);
  args.cache = cache;
  ++forwards_;
  padded_tokens_ += ids.numel();
  at::Tensor hidden = model_.forward_hidden(args);
  if (logits_to_keep > 0) hidden = hidden.narrow(1, hidden.size(1) - logits_to_keep, logits_to_keep);
  return hidden;
}

std::vector<Result> ModelRunner::loglikelihood(const std::vector<const Request*>& requests) {
  at::NoGradGuard no_grad;
  std::vector<Result> out(requests.size());
  std::vector<Scored> items;
  for (size_t i = 0; i < requests.size(); ++i) items.push_back({i, encode_pair(*requests[i])});
  if (options_.share_context) score_shared(items, out);
  else score_pairs(items, out);
  return out;
}

// lm-eval's way: one row per (context, continuation), longest first, right-padded.
void ModelRunner::score_pairs(std::vector<Scored>& items, std::vector<Result>& out) {
  std::vector<std::vector<int64_t>> inputs(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<int64_t> full = items[i].pair.context;
    full.insert(full.end(), items[i].pair.continuation.begin(), items[i].pair.continuation.end());
    Result& r = out[items[i].request];
    r.truncated = int64_t(full.size()) > max_length_ + 1;
    if (r.truncated) full.erase(full.begin(), full.end() - (max_length_ + 1));
    full.pop_back();
    inputs[i] = std::move(full);
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return inputs[a].size() > inputs[b].size(); });
  for (size_t begin = 0; begin < order.size();) {
    const size_t width = inputs[order[begin]].size();
    size_t end = begin + 1;
    while (end < order.size() && int64_t((end - begin + 1) * width) <= options_.batch_tokens) ++end;
    const int64_t rows = int64_t(end - begin);
    std::vector<int64_t> ids(size_t(rows) * width, 0);
    for (int64_t r = 0; r < rows; ++r)
      std::copy(inputs[order[begin + r]].begin(), inputs[order[begin + r]].end(), ids.begin() + r * int64_t(width));
    const at::Tensor hidden = run(long_tensor(ids, {rows, int64_t(width)}), {}, {}, nullptr, 0);
    std::vector<int64_t> at, targets;
    std::vector<Result*> owners;
    for (int64_t r = 0; r < rows; ++r) {
      const Scored& it = items[order[begin + r]];
      // A continuation longer than the context (lm-eval asserts there) is scored on its last max_length
      // tokens, which is what the left-truncated input predicts; flagged truncated.
      const int64_t len = int64_t(inputs[order[begin + r]].size()), full = int64_t(it.pair.continuation.size());
      const int64_t cont = std::min(full, len);
      Result& res = out[it.request];
      res.is_greedy = true;
      res.tokens = cont;
      for (int64_t t = 0; t < cont; ++t) {
        at.push_back(r * int64_t(width) + len - cont + t);
        targets.push_back(it.pair.continuation[size_t(full - cont + t)]);
        owners.push_back(&res);
      }
    }
    score_positions(model_, hidden.reshape({rows * int64_t(width), hidden.size(2)}), at, targets, owners);
    begin = end;
  }
}

// Continuations of the same context tokens share one context pass (see the header). Requests whose input
// would be left-truncated go the pairwise way: their contexts differ per continuation.
void ModelRunner::score_shared(std::vector<Scored>& items, std::vector<Result>& out) {
  std::map<std::vector<int64_t>, std::vector<size_t>> by_context;
  std::vector<Scored> truncated;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& p = items[i].pair;
    if (int64_t(p.context.size() + p.continuation.size()) > max_length_ + 1) truncated.push_back(items[i]);
    else by_context[p.context].push_back(i);
  }
  if (!truncated.empty()) score_pairs(truncated, out);
  std::vector<const std::vector<int64_t>*> contexts;
  std::vector<const std::vector<size_t>*> members;
  for (const auto& [ctx, idx] : by_context) {
    contexts.push_back(&ctx);
    members.push_back(&idx);
  }
  std::vector<size_t> order(contexts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return contexts[a]->size() > contexts[b]->size(); });

  for (size_t begin = 0; begin < order.size();) {
    // A batch of documents: contexts left-padded to the longest, continuations right-padded.
    const int64_t ctx_width = int64_t(contexts[order[begin]]->size());
    // Documents of similar context lengths (≥ 90 % of the longest: little left padding) within the budget.
    size_t end = begin + 1;
    while (end < order.size() && int64_t(end - begin + 1) * ctx_width <= options_.batch_tokens &&
           int64_t(contexts[order[end]]->size()) * 10 >= ctx_width * kSimilar)
      ++end;
    const int64_t docs = int64_t(end - begin);
    std::vector<const std::vector<int64_t>*> batch_contexts;
    for (size_t d = begin; d < end; ++d) batch_contexts.push_back(contexts[order[d]]);
    const detail::LeftPadded batch = detail::left_pad(batch_contexts, ctx_width);
    model::KVCache cache;
    const at::Tensor last = run(batch.ids, batch.mask, batch.positions, &cache, 1);
    const at::Tensor last_hidden = last.squeeze(1);  // [docs, H]: predicts each continuation's first token

    // One row per continuation, its document's cache row repeated; rows sorted by length and run in
    // sub-batches of similar lengths (≥ 90 % of the longest), so little is padded.
    struct Row {
      int64_t doc;
      const Scored* item;
    };
    std::vector<Row> all_rows;
    for (int64_t d = 0; d < docs; ++d)
      for (size_t m : *members[order[begin + d]]) all_rows.push_back({d, &items[m]});
    std::stable_sort(all_rows.begin(), all_rows.end(), [](const Row& a, const Row& b) {
      return a.item->pair.continuation.size() > b.item->pair.continuation.size();
    });
    for (size_t rb = 0; rb < all_rows.size();) {
      const int64_t width = int64_t(all_rows[rb].item->pair.continuation.size()) - 1;
      size_t re = rb + 1;
      while (re < all_rows.size() && (int64_t(all_rows[re].item->pair.continuation.size()) - 1) * 10 >= width * kSimilar &&
             int64_t(re - rb + 1) * (width + ctx_width) <= options_.batch_tokens)
        ++re;
      const int64_t n = int64_t(re - rb);
      at::Tensor hidden;
      if (width > 0) {
        std::vector<int64_t> row_doc, cids(size_t(n * width), 0), cmask(cids.size(), 0), cpos(cids.size(), 0);
        for (int64_t r = 0; r < n; ++r) {
          const Row& row = all_rows[rb + size_t(r)];
          const int64_t ctx_len = int64_t(contexts[order[begin + size_t(row.doc)]]->size());
          const auto& cont = row.item->pair.continuation;
          for (int64_t t = 0; t + 1 < int64_t(cont.size()); ++t) {
            cids[size_t(r * width + t)] = cont[size_t(t)];
            cmask[size_t(r * width + t)] = 1;
            cpos[size_t(r * width + t)] = ctx_len + t;
          }
          row_doc.push_back(row.doc);
        }
        model::KVCache rows_cache = cache.rows(at::tensor(row_doc, at::kLong));
        hidden = run(long_tensor(cids, {n, width}), long_tensor(cmask, {n, width}), long_tensor(cpos, {n, width}),
                     &rows_cache, 0);
      }
      std::vector<int64_t> first_at, first_targets, at, targets;
      std::vector<Result*> first_owners, owners;
      for (int64_t r = 0; r < n; ++r) {
        const Row& row = all_rows[rb + size_t(r)];
        const auto& cont = row.item->pair.continuation;
        Result& res = out[row.item->request];
        res.is_greedy = true;
        res.tokens = int64_t(cont.size());
        first_at.push_back(row.doc);
        first_targets.push_back(cont[0]);
        first_owners.push_back(&res);
        for (size_t t = 1; t < cont.size(); ++t) {
          at.push_back(r * width + int64_t(t) - 1);
          targets.push_back(cont[t]);
          owners.push_back(&res);
        }
      }
      score_positions(model_, last_hidden, first_at, first_targets, first_owners);
      if (width > 0) score_positions(model_, hidden.reshape({n * width, hidden.size(2)}), at, targets, owners);
      rb = re;
    }
    begin = end;
  }
}

Result ModelRunner::loglikelihood_rolling(const Request& request) {
  at::NoGradGuard no_grad;
  const auto tokens = widen(tokenizer_.encode_ids(request.context, false));
  Result result;
  result.tokens = int64_t(tokens.size());
  result.is_greedy = true;
  // Disjoint windows (context_len 1): window w predicts tokens [w·L, min((w+1)·L, n)) from the L tokens
  // before each, the first from [EOS] + tokens.
  for (size_t predicted = 0; predicted < tokens.size();) {
    const size_t end = std::min(tokens.size(), predicted + size_t(max_length_));
    std::vector<int64_t> input;
    if (predicted == 0) {
      input.push_back(eos_);
      input.insert(input.end(), tokens.begin(), tokens.begin() + int64_t(end) - 1);
    } else {
      input.assign(tokens.begin() + int64_t(end) - max_length_ - 1, tokens.begin() + int64_t(end) - 1);
    }
    const int64_t pred = int64_t(end - predicted), len = int64_t(input.size());
    const at::Tensor hidden = run(long_tensor(input, {1, len}), {}, {}, nullptr, 0);
    std::vector<int64_t> window(static_cast<size_t>(pred));
    for (int64_t i = 0; i < pred; ++i) window[size_t(i)] = len - pred + i;
    score_positions(model_, hidden[0], window,
                    std::vector<int64_t>(tokens.begin() + int64_t(predicted), tokens.begin() + int64_t(end)),
                    std::vector<Result*>(size_t(pred), &result));
    predicted = end;
  }
  return result;
}

}  // namespace fusellm::eval
