#include "fusellm/util/allocator.hpp"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fusellm {

void tune_allocator_for_tensors() {
#if defined(__GLIBC__)
  if (const char* off = std::getenv("FUSELLM_NO_ALLOC_TUNING"); off && *off == '1') return;  // for A/B runs
  // 32 MiB is glibc's ceiling for M_MMAP_THRESHOLD on 64-bit; setting it also stops the dynamic
  // threshold from moving. Keep up to 1 GiB of freed heap instead of trimming it back to the kernel.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
#endif
}

}  // namespace fusellm
