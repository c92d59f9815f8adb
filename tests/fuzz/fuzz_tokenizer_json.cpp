// Fuzzes tokenizer.json parsing, then encodes and decodes a few texts with any tokenizer the
// parser accepted. Accepted: a tokenizer, or a UserError. Findings: any other exception, a crash,
// a sanitizer report, an id outside the vocabulary, or decoded text that is not valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/tokenizers/hf_tokenizer.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

using namespace shardtune::io::tokenizers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  std::unique_ptr<HfBpeTokenizer> tok;
  try {
    tok = HfBpeTokenizer::parse_tokenizer_json(json, "fuzz.json");
  } catch (const shardtune::UserError&) {
    return 0;
  }
  static const char* const kTexts[] = {"hello world", "  Hello,\tWorld!\n\n", "héllo 中文 👋 x",
                                       "<|endoftext|>a<s>b</s>", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ""};
  for (const char* text : kTexts) {
    for (bool special : {true, false}) {
      try {
        const auto ids = tok->encode(text, EncodeOptions{special});
        for (int64_t id : ids) {
          if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
        }
        const std::string back = tok->decode(ids, DecodeOptions{false});
        if (find_invalid_utf8(back) != std::string_view::npos) __builtin_trap();
      } catch (const shardtune::UserError&) {
      }
    }
  }
  return 0;
}
