// Fuzzes GPT-2's vocab.json + merges.txt. Input: the vocabulary JSON, a NUL byte, the merges text
// (no NUL: all of it is the vocabulary, with no merges). Accepted: a tokenizer or a UserError; a
// tokenizer must then encode text to ids in range and decode them back exactly (GPT-2's pipeline
// has no normalizer, so a byte-level round trip is exact).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "io/tokenizers/hf_tokenizer.h"
#include "base/errors.h"

using namespace shardtune::io::tokenizers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view vocab = input.substr(0, nul);
  const std::string_view merges = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  std::unique_ptr<HfBpeTokenizer> tok;
  try {
    tok = HfBpeTokenizer::parse_gpt2(vocab, merges, "fuzz vocab.json + merges.txt");
  } catch (const shardtune::UserError&) {
    return 0;
  }
  static const char* const kTexts[] = {"hello world", "  Hello,\tWorld!\n\n's 're", "héllo 中文 👋 x12345",
                                       "<|endoftext|>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  for (const char* text : kTexts) {
    const auto ids = tok->encode(text, EncodeOptions{false});
    for (int64_t id : ids) {
      if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
    }
    if (tok->decode(ids, DecodeOptions{false}) != text) __builtin_trap();
  }
  return 0;
}
