#pragma once
// Activation checkpointing (gradient checkpointing) for training: a BlockRunner that keeps only each
// transformer block's input instead of every intermediate activation of the block, and recomputes the
// block during backward. Memory: activations of one block at a time instead of all of them (plus one
// [B, T, hidden] tensor per block). Cost: one extra forward pass per block.
#include "fusellm/model/causal_lm.hpp"

namespace fusellm::train {

// A runner for ForwardArgs::block_runner. With grad mode enabled, the block runs without recording its
// graph and backward re-runs it (reentrant backward: the incoming gradient is backpropagated through the
// recomputed block, parameter gradients accumulate into the leaves' .grad as without checkpointing).
// With grad mode disabled (inference) it simply calls the block.
// The block must be deterministic (fusellm blocks have no dropout) and must not touch a KV cache when
// grad is enabled (the recomputation would append to it a second time).
model::BlockRunner checkpointing_block_runner();

}  // namespace fusellm::train
