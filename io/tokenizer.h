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

// No tokenizer, for pre-tokenized data ({"input_ids": [...]} records) and models whose folder has no
// tokenizer files: vocab_size 0 (any model vocabulary fits), no BOS/EOS (-1: nothing is added
// around the ids), pad 0 (padding sits after the last real token and carries no loss, so its id
// never reaches a prediction). encode() of any text is a UserError naming [data] tokenizer.
class NoTokenizer final : public core::Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return 0; }
  int64_t bos_id() const override { return -1; }
  int64_t eos_id() const override { return -1; }
  int64_t pad_id() const override { return 0; }
  std::string identity() const override { return "none"; }
};

// Builds the tokenizer [data] tokenizer names: "byte" (the default), "none" (above), or a path: a
// tokenizer file or a Hugging Face model folder, loaded by io/tokenizers/loader.h (tokenizer.json,
// vocab.json + merges.txt, tokenizer.model). A file-backed tokenizer must have a pad or an EOS
// token (the pad falls back to EOS) to pad batches. UserError naming `field` and the path.
std::unique_ptr<core::Tokenizer> make_tokenizer(const std::string& name, const std::string& field);

// make_tokenizer for [data] tokenizer, refusing a tokenizer whose vocabulary is larger than the
// model's ([model] vocab_size): the tokenizer of training and of `shardtune preprocess`.
std::unique_ptr<core::Tokenizer> make_model_tokenizer(const std::string& name, int64_t model_vocab);

// The folder holding a path tokenizer's files ("" for byte and none): export_hf copies the
// tokenizer files from there.
std::string tokenizer_folder(const std::string& name);

}  // namespace shardtune::io
