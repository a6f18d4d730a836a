// The compute side of infer: token ids of a chunk, length-bucketed batch plans, and one batch's forward pass
// reduced to top-k on the model's device.
#include <algorithm>
#include <numeric>

#include "fusellm/teacher/infer.hpp"
#include "fusellm/util/error.hpp"

#ifdef FUSELLM_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#endif

namespace fusellm::teacher {

std::vector<int32_t> chunk_token_ids(const tok::Tokenizer& tokenizer, const std::string& text, bool add_bos,
                                     bool add_eos) {
  const tok::SpecialTokens& special = tokenizer.special_tokens();
  std::vector<int32_t> ids;
  std::vector<int32_t> body = tokenizer.encode_ids(text, /*add_special_tokens=*/false);
  ids.reserve(body.size() + 2);
  if (add_bos) {
    FUSELLM_CHECK(special.bos.has_value(), "{}: infer.add_bos is on but the tokenizer has no BOS token",
                  tokenizer.source());
    ids.push_back(*special.bos);
  }
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_eos) {
    FUSELLM_CHECK(special.eos.has_value(), "{}: infer.add_eos is on but the tokenizer has no EOS token",
                  tokenizer.source());
    ids.push_back(*special.eos);
  }
  return ids;
}

std::vector<std::vector<size_t>> plan_length_batches(const std::vector<size_t>& lengths, int64_t batch_tokens) {
  FUSELLM_CHECK(batch_tokens >= 1, "infer.batch_tokens: must be at least 1, got {}", batch_tokens);
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Longest first: the largest batch runs first, so an out-of-memory shows at once, not hours in.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<size_t>> batches;
  const auto budget = static_cast<uint64_t>(batch_tokens);
  for (size_t i : order) {
    // Rows arrive in non-increasing length, so a batch's first row is its longest.
    if (!batches.empty()) {
      auto& current = batches.back();
      const uint64_t longest = lengths[current.front()];
      if ((current.size() + 1) * longest <= budget) {
        current.push_back(i);
        continue;
      }
    }
    batches.push_back({i});  // a row longer than the budget still runs, alone
  }
  return batches;
}

namespace {

// The LM head runs over slices of positions so that one slice's fp32 logits stay within ~1 GiB whatever the
// vocabulary size.
constexpr int64_t kLogitBytesPerSlice = int64_t{1} << 30;

}  // namespace

BatchTopK compute_batch_topk(model::CausalLM& model, const std::vector<std::vector<int32_t>>& rows, uint32_t k,
                             int64_t pad_to) {
  FUSELLM_CHECK(!rows.empty(), "infer: empty batch");
  at::NoGradGuard no_grad;
  const auto B = static_cast<int64_t>(rows.size());
  int64_t T = std::max<int64_t>(pad_to, 0);
  int64_t P = 0;
  BatchTopK out;
  for (const auto& row : rows) {
    FUSELLM_CHECK(!row.empty(), "infer: empty row in a batch");
    T = std::max<int64_t>(T, static_cast<int64_t>(row.size()));
    P += static_cast<int64_t>(row.size());
    out.lengths.push_back(static_cast<int64_t>(row.size()));
  }
  const int64_t vocab = model.config().vocab_size;
  FUSELLM_CHECK(static_cast<int64_t>(k) <= vocab, "infer.top_k: {} exceeds the vocabulary size {}", k, vocab);

  // Host-side inputs: right-padded ids, the mask, where each real position sits in the [B*T] grid, and the
  // next token of each real position (0 for a row's last position, whose value is never used).
  at::Tensor ids = at::zeros({B, T}, at::kLong);
  at::Tensor mask = at::zeros({B, T}, at::kLong);
  at::Tensor flat_index = at::empty({P}, at::kLong);
  at::Tensor targets = at::zeros({P}, at::kLong);
  {
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    int64_t* flat = flat_index.data_ptr<int64_t>();
    int64_t* next = targets.data_ptr<int64_t>();
    int64_t p = 0;
    for (int64_t b = 0; b < B; ++b) {
      const auto& row = rows[static_cast<size_t>(b)];
      const auto n = static_cast<int64_t>(row.size());
      for (int64_t t = 0; t < n; ++t, ++p) {
        FUSELLM_CHECK(row[t] >= 0 && row[t] < vocab, "infer: token id {} outside the model's vocabulary ({})",
                      row[t], vocab);
        ids_a[b][t] = row[t];
        mask_a[b][t] = 1;
        flat[p] = b * T + t;
        next[p] = t + 1 < n ? row[t + 1] : 0;
      }
    }
  }

  const at::Device device = model.device();
  model::ForwardArgs args;
  args.input_ids = ids.to(device);
  args.attention_mask = mask.to(device);
  at::Tensor hidden = model.forward_hidden(args);  // [B, T, H]
  hidden = hidden.reshape({B * T, hidden.size(-1)}).index_select(0, flat_index.to(device));  // [P, H]
  at::Tensor next_dev = targets.to(device);

  auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor topk_lp = at::empty({P, static_cast<int64_t>(k)}, f32);
  at::Tensor topk_ids = at::empty({P, static_cast<int64_t>(k)}, f32.dtype(at::kInt));
  at::Tensor next_lp = at::empty({P}, f32);
  const int64_t slice = std::max<int64_t>(1, kLogitBytesPerSlice / (4 * vocab));
  for (int64_t begin = 0; begin < P; begin += slice) {
    const int64_t n = std::min(slice, P - begin);
    at::Tensor logits = model.logits_from_hidden(hidden.narrow(0, begin, n));  // [n, V] fp32
    if (logits.scalar_type() != at::kFloat) logits = logits.to(at::kFloat);
    // log_softmax in fp32, in place (logits - logsumexp): no second [n, V] buffer.
    logits.sub_(logits.logsumexp(-1, /*keepdim=*/true));
    auto [values, indices] = logits.topk(static_cast<int64_t>(k), -1, /*largest=*/true, /*sorted=*/true);
    topk_lp.narrow(0, begin, n).copy_(values);
    topk_ids.narrow(0, begin, n).copy_(indices);
    next_lp.narrow(0, begin, n).copy_(logits.gather(1, next_dev.narrow(0, begin, n).unsqueeze(1)).squeeze(1));
  }
  // A row's last position has no next token: a defined 0 rather than whatever id 0 got.
  {
    std::vector<int64_t> last;
    int64_t p = 0;
    for (int64_t n : out.lengths) {
      p += n;
      last.push_back(p - 1);
    }
    next_lp.index_fill_(0, at::tensor(last, at::kLong).to(device), 0.0);
  }

  if (device.is_cuda()) {
#ifdef FUSELLM_HAS_CUDA
    // Pinned host buffers and asynchronous copies: the caller can queue the next batch before these land.
    auto pinned = [](const at::Tensor& t) {
      return at::empty(t.sizes(), at::TensorOptions().dtype(t.scalar_type()).pinned_memory(true));
    };
    out.topk_logprobs = pinned(topk_lp).copy_(topk_lp, /*non_blocking=*/true);
    out.topk_ids = pinned(topk_ids).copy_(topk_ids, /*non_blocking=*/true);
    out.next_logprobs = pinned(next_lp).copy_(next_lp, /*non_blocking=*/true);
    auto event = std::make_shared<at::cuda::CUDAEvent>();
    event->record(at::cuda::getCurrentCUDAStream(device.index()));
    out.wait = [event] { event->synchronize(); };
    return out;
#endif
  }
  out.topk_logprobs = topk_lp.to(at::kCPU);
  out.topk_ids = topk_ids.to(at::kCPU);
  out.next_logprobs = next_lp.to(at::kCPU);
  return out;
}

}  // namespace fusellm::teacher
