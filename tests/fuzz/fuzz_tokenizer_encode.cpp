// Fuzzes encode() of a real tokenizer on arbitrary bytes. The tokenizer is loaded once from
// $SHARDTUNE_FUZZ_TOKENIZER (a file or folder; default: GPT-2 from the test assets). Invalid
// UTF-8 must be refused with a UserError; valid UTF-8 must encode to ids in range and, with
// special tokens kept, decode back to exactly the input (the byte-level tokenizers the script
// runs this with have no normalizer; set SHARDTUNE_FUZZ_ROUNDTRIP=0 for one that has).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "io/tokenizers/loader.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

using namespace shardtune::io::tokenizers;

namespace {
std::unique_ptr<TextTokenizer> g_tok;
bool g_roundtrip = true;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("SHARDTUNE_FUZZ_TOKENIZER");
  const std::string path = env && *env ? env : std::string(SHARDTUNE_SOURCE_DIR) + "/.cache/test-assets/gpt2";
  const char* rt = std::getenv("SHARDTUNE_FUZZ_ROUNDTRIP");
  g_roundtrip = !(rt && std::string(rt) == "0");
  try {
    g_tok = load_tokenizer(path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_tokenizer_encode: cannot load %s: %s\n", path.c_str(), e.what());
    std::exit(2);
  }
  std::fprintf(stderr, "fuzz_tokenizer_encode: %s (%s)\n", path.c_str(), g_tok->identity().c_str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool valid = find_invalid_utf8(text) == std::string_view::npos;
  for (bool special : {true, false}) {
    std::vector<int64_t> ids;
    try {
      ids = g_tok->encode(text, EncodeOptions{special});
    } catch (const shardtune::UserError&) {
      if (valid) __builtin_trap();  // valid text must encode
      return 0;
    }
    if (!valid) __builtin_trap();  // invalid text must be refused
    for (int64_t id : ids) {
      if (id < 0 || id >= g_tok->vocab_size()) __builtin_trap();
    }
    if (g_roundtrip && g_tok->decode(ids, DecodeOptions{false}) != text) __builtin_trap();
  }
  return 0;
}
