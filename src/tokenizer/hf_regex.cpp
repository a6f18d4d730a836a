// PCRE2 wrapper (see hf_regex.hpp).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "hf_regex.hpp"

#include <pcre2.h>

#include <cctype>

#include "fusellm/util/error.hpp"

namespace fusellm::tok::hf {
namespace {

// One JIT stack per thread: long runs of whitespace under `\s+(?!\S)` outgrow PCRE2's 32 KiB default.
struct ThreadMatchContext {
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadMatchContext() {
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
    // A hostile tokenizer.json may carry a catastrophically backtracking pattern (e.g. "(a+)+$"): these
    // limits make such a match fail with an error instead of hanging tokenize. The match limit (PCRE2's
    // own default, made explicit) bounds backtracking steps per match call and is honoured by the JIT;
    // depth and heap bound the interpreter. The real pre-tokenizer patterns stay orders of magnitude
    // below them (a GPT-2 style match costs a few steps per byte).
    if (context) {
      pcre2_set_match_limit(context, 10'000'000);
      pcre2_set_depth_limit(context, 1'000'000);
      pcre2_set_heap_limit(context, 256 * 1024);  // KiB
    }
  }
  ~ThreadMatchContext() {
    if (stack) pcre2_jit_stack_free(stack);
    if (context) pcre2_match_context_free(context);
  }
};

pcre2_match_context* thread_match_context() {
  thread_local ThreadMatchContext ctx;
  return ctx.context;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& what) : what_(what) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail("{}: cannot compile regex '{}' at offset {}: {}", what, pattern, offset,
         reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, thread_match_context());
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(data);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail("{}: regex match failed: {}", what_, reinterpret_cast<const char*>(message));
    }
    PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    size_t b = ovector[0], e = ovector[1];
    if (e > b) {
      matches.emplace_back(b, e);
      start = e;
    } else {  // an empty match: step over one character
      if (b >= text.size()) break;
      start = b + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    }
  }
  pcre2_match_data_free(data);
  return matches;
}

std::string Regex::escape(std::string_view literal) {
  // In PCRE2 a backslash before any ASCII punctuation or space makes it literal; other bytes match
  // themselves (the pattern is not compiled in extended mode).
  std::string out;
  for (char c : literal) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && (std::ispunct(u) || c == ' ')) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace fusellm::tok::hf
