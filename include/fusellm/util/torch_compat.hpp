#pragma once
// Every difference between LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (CUDA) lives here.
#include <ATen/ATen.h>
#include <torch/version.h>

namespace fusellm::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

// softmax(q·kᵀ·scale + mask)·v for q [B,H,Tq,D], k/v [B,H,Tk,D] (same head count), with an additive
// float mask broadcastable to [B,H,Tq,Tk]. On LibTorch 2.x this is at::scaled_dot_product_attention
// (flash / memory-efficient kernels on CUDA); on 1.13 an explicit matmul-softmax-matmul.
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& additive_mask, double scale) {
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 1 || TORCH_VERSION_MAJOR >= 3
  return at::scaled_dot_product_attention(q, k, v, additive_mask, 0.0, false, scale);
#else
  // Scaling q (T·D values) instead of the scores (T·Tk) saves a pass over the largest tensor; the
  // in-place mask add is autograd-safe because matmul's backward does not read its output.
  auto scores = at::matmul(q * scale, k.transpose(-2, -1));
  if (additive_mask.defined()) scores.add_(additive_mask);
  // Softmax in float32 and cast back, as HF eager attention does for bf16/fp16; float64 stays float64
  // (its lowest mask value would overflow to -inf in float32 and turn a fully masked row into NaN).
  const auto softmax_dtype = scores.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return at::matmul(at::softmax(scores, -1, softmax_dtype).to(v.scalar_type()), v);
#endif
}

}  // namespace fusellm::compat
