// The interface every file-backed tokenizer implements: io::Tokenizer (encode, decode, vocab_size,
// bos/eos/pad, identity) plus what real vocabularies need beyond it: tokens by name
// (token_to_id("<|im_start|>")), an unknown id, and encoding with or without special-token
// parsing. Chat templates and data preparation use this interface; nothing here needs LibTorch.
//
// Thread-safety: every const method may be called from several threads at once (the encoders keep
// their caches per thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer.h"

namespace shardtune::io::tokenizers {

// The id of a role that a tokenizer does not have (Qwen has no BOS, Llama 3 no pad in its files).
inline constexpr int64_t kNoToken = -1;

struct EncodeOptions {
  // true: a special token's text ("<|im_start|>") in the input becomes its id. false: it is
  // encoded as ordinary text, so user data cannot inject control tokens. Added tokens that are
  // not special (Qwen's "<think>") are matched either way, as Hugging Face does.
  bool parse_special = true;
};

struct DecodeOptions {
  // Special tokens (BOS, EOS, "<|im_end|>") are dropped unless this is false.
  bool skip_special = true;
};

// One entry of the added-token table: its id, text, and whether it is special.
struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false;
};

class TextTokenizer : public core::Tokenizer {
 public:
  // core::Tokenizer: encode() parses special tokens; decode() drops them and throws UserError for
  // an id outside [0, vocab_size()) or one that names no token. Neither adds BOS/EOS.
  std::vector<int64_t> encode(std::string_view text) const override { return encode(text, {}); }
  std::string decode(const std::vector<int64_t>& ids) const override { return decode(ids, {}); }

  // Text -> ids. Throws UserError if `text` is not valid UTF-8 (naming the byte offset) or holds a
  // character the vocabulary cannot represent (no byte fallback, no unknown token).
  virtual std::vector<int64_t> encode(std::string_view text, const EncodeOptions& options) const = 0;
  // Ids -> text. Byte sequences that are not valid UTF-8 (a cut multi-byte character) decode to
  // U+FFFD, as Hugging Face does.
  virtual std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const = 0;

  // The id of a token given by its text (added, special or ordinary), if the vocabulary has it.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  // The text of a token as the vocabulary spells it ("Ġworld", "<0x41>", "<|im_end|>").
  // Throws UserError for an id that names no token.
  virtual std::string id_to_token(int64_t id) const = 0;
  // The unknown-token id, or kNoToken (byte-level vocabularies have none: every byte is a token).
  virtual int64_t unk_id() const = 0;
  // Added tokens (tokenizer.json's added_tokens; SentencePiece's control and unknown pieces, as
  // libsentencepiece 0.1.97 does not say which pieces are user-defined).
  virtual std::vector<AddedToken> added_tokens() const = 0;
  // A short name of the format: "hf-bpe", "gpt2-bpe", "sentencepiece".
  virtual std::string kind() const = 0;
};

}  // namespace shardtune::io::tokenizers
