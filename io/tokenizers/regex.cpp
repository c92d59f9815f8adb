// PCRE2 (8-bit, UTF + UCP) behind Regex. Matching state is per thread, so const find_all is
// thread-safe.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/tokenizers/regex.h"

#include <pcre2.h>

#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

namespace {

// Bounds on the work one match attempt may do: far above what tokenizer patterns need on any
// text (they are linear), low enough that catastrophic backtracking ends in well under a second.
constexpr uint32_t kMatchLimit = 10'000'000;
constexpr uint32_t kDepthLimit = 100'000;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

namespace {

// Per-thread matching state shared by every Regex: match data grown to the largest pattern seen,
// a match context with the limits, and a JIT stack made only if the default one (32 KiB on the
// machine stack) runs out. PCRE2 forbids sharing a JIT stack between threads, hence per thread.
struct ThreadMatchState {
  pcre2_match_data* md = nullptr;
  uint32_t pairs = 0;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ThreadMatchState() {
    context = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(context, kMatchLimit);
    pcre2_set_depth_limit(context, kDepthLimit);
  }
  ~ThreadMatchState() {
    if (md) pcre2_match_data_free(md);
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
    if (context) pcre2_match_context_free(context);
  }
  void ensure_pairs(uint32_t n) {
    if (md && pairs >= n) return;
    if (md) pcre2_match_data_free(md);
    pairs = n;
    md = pcre2_match_data_create(pairs, nullptr);
  }
  bool grow_jit_stack() {
    if (jit_stack) return false;
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (!jit_stack) return false;
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
    return true;
  }
};

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where)
    : impl_(std::make_unique<Impl>()), pattern_(pattern), where_(where) {
  require_utf8(pattern, where + " (a regex)");
  int error = 0;
  PCRE2_SIZE offset = 0;
  // UCP: \s, \w, \d and POSIX classes follow Unicode properties, as Oniguruma's and Rust's regex
  // engines do in Hugging Face tokenizers.
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!impl_->code) {
    throw UserError(where + ": cannot compile the regex \"" + pattern + "\": " +
                    pcre2_message(error) + " (at offset " + std::to_string(offset) + ")");
  }
  // Without JIT support PCRE2 interprets the pattern: slower, same results.
  (void)pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view text, std::vector<Match>& out) const {
  thread_local ThreadMatchState state;
  uint32_t capture_count = 0;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_CAPTURECOUNT, &capture_count);
  state.ensure_pairs(capture_count + 1);

  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, state.md,
                         state.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && state.grow_jit_stack()) continue;
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw UserError(where_ + ": the regex \"" + pattern_ + "\" failed on the input text: " +
                      pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.md);
    const std::size_t b = ov[0], e = ov[1];
    if (e < b || b < start) break;  // only \K can produce these; no tokenizer pattern uses it
    out.push_back({b, e});
    if (e > b) {
      start = e;
    } else {
      if (e >= text.size()) break;
      start = e + utf8_length(static_cast<unsigned char>(text[e]));
    }
  }
}

}  // namespace shardtune::io::tokenizers
