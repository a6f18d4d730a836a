#pragma once
// glibc malloc tuning for tensor-heavy processes.
namespace fusellm {

// glibc returns large freed blocks to the kernel (munmap / heap trim) and maps them again on the next
// batch, so every forward pass pays page faults and zeroing for its activations and logits; measured on
// `fusellm infer` with stories260K, about half the CPU time was kernel time. Fixing the mmap threshold at
// its maximum and raising the trim threshold keeps freed memory in the process for reuse.
// Idempotent; a no-op outside glibc or with FUSELLM_NO_ALLOC_TUNING=1 (for comparisons).
void tune_allocator_for_tensors();

}  // namespace fusellm
