// Tokenizers: the byte-level tokenizer and the factory that maps a config name to one.
#include "io/tokenizer.h"

#include "base/errors.h"

namespace shardtune::io {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  // Through unsigned char: a plain char is signed on x86, and bytes >= 0x80 (every byte of a
  // multibyte UTF-8 sequence) must map to 128..255, not to negative ids.
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  // BOS/EOS/PAD (and anything else out of byte range, e.g. a sampled id from a larger
  // vocabulary) carry no text; dropping them keeps decode total rather than throwing mid-generation.
  for (int64_t id : ids) {
    if (id >= 0 && id < 256) text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
  }
  return text;
}

std::unique_ptr<core::Tokenizer> make_tokenizer(const std::string& name, const std::string& field) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  throw UserError(field + ": unknown tokenizer '" + name + "' (known: byte)");
}

}  // namespace shardtune::io
