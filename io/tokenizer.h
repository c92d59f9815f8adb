// Tokenizers (implementations of core::Tokenizer, core/tokenizer.h). The built-in byte-level
// tokenizer needs no files: ids 0..255 are the bytes of the UTF-8 text, then BOS, EOS and PAD.
// Other tokenizers (BPE tokenizer.json, SentencePiece) plug in behind the same interface, chosen
// by make_tokenizer from [data] tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer.h"

namespace shardtune::io {

class ByteTokenizer final : public core::Tokenizer {
 public:
  static constexpr int64_t kBos = 256, kEos = 257, kPad = 258, kVocab = 259;
  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return kVocab; }
  int64_t bos_id() const override { return kBos; }
  int64_t eos_id() const override { return kEos; }
  int64_t pad_id() const override { return kPad; }
  std::string identity() const override { return "byte-v1"; }
};

// Builds a tokenizer from its config name ("byte"); throws UserError naming `field` otherwise.
std::unique_ptr<core::Tokenizer> make_tokenizer(const std::string& name, const std::string& field);

}  // namespace shardtune::io
