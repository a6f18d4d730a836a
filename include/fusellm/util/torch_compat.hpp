#pragma once
// Every difference between LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (CUDA) lives here.
#include <ATen/ATen.h>
#include <torch/version.h>

namespace fusellm::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

// [B, KV, T, D] → [B, KV·n_rep, T, D]: query head h reads kv head h / n_rep (grouped-query attention).
inline at::Tensor repeat_kv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const auto b = x.size(0), kv = x.size(1), t = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, kv, n_rep, t, d}).reshape({b, kv * n_rep, t, d});
}

// softmax(q·kᵀ·scale + mask)·v for q [B,H,Tq,D] and k/v [B,KV,Tk,D] with H a multiple of KV (query head h
// reads kv head h / (H/KV)), with an additive float mask broadcastable to [B,H,Tq,Tk] (its head dimension
// 1 or H). On LibTorch 2.x this is at::scaled_dot_product_attention on repeated kv heads (flash /
// memory-efficient kernels on CUDA); on 1.13 an explicit matmul-softmax-matmul that folds each kv head's
// query heads into the query length, so the keys and values (a whole KV cache when decoding) are never
// copied per query head.
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& additive_mask, double scale) {
  const int64_t n_rep = q.size(1) / k.size(1);
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 1 || TORCH_VERSION_MAJOR >= 3
  return at::scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), additive_mask, 0.0, false,
                                          scale);
#else
  const int64_t b = q.size(0), heads = q.size(1), tq = q.size(2), d = q.size(3), kv = k.size(1), tk = k.size(2);
  // Scaling q (T·D values) instead of the scores (T·Tk) saves a pass over the largest tensor; the
  // in-place mask add is autograd-safe because matmul's backward does not read its output.
  const auto grouped_q = (q * scale).reshape({b, kv, n_rep * tq, d});  // rows: (head in group, query)
  auto scores = at::matmul(grouped_q, k.transpose(-2, -1));            // [B, KV, n_rep·Tq, Tk]
  if (additive_mask.defined()) {
    const auto& m = additive_mask;
    // The mask's head dimension 1 broadcasts over (kv head, head in group); H splits into the two.
    const auto grouped_mask = m.size(1) == 1 ? m.unsqueeze(2) : m.reshape({m.size(0), kv, n_rep, m.size(2), m.size(3)});
    scores.view({b, kv, n_rep, tq, tk}).add_(grouped_mask);
  }
  // Softmax in float32 and cast back, as HF eager attention does for bf16/fp16; float64 stays float64
  // (its lowest mask value would overflow to -inf in float32 and turn a fully masked row into NaN).
  const auto softmax_dtype = scores.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto out = at::matmul(at::softmax(scores, -1, softmax_dtype).to(v.scalar_type()), v);  // [B, KV, n_rep·Tq, D]
  return out.view({b, heads, tq, d});
#endif
}

}  // namespace fusellm::compat
