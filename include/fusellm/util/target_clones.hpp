#pragma once
// Function multi-versioning: an AVX2 clone and the default one, picked at load time by an ifunc resolver.
// ThreadSanitizer instruments that resolver, which runs during relocation before its runtime exists and
// crashes the process at start, so TSan builds keep only the default version.
#if defined(__SANITIZE_THREAD__)
#define FUSELLM_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FUSELLM_TSAN_BUILD 1
#endif
#endif

#ifdef FUSELLM_TSAN_BUILD
#define FUSELLM_AVX2_CLONES
#else
#define FUSELLM_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#endif
