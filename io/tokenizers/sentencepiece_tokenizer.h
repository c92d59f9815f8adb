// SentencePiece models (tokenizer.model: Llama 2, Mistral, T5, ALBERT, ...) through
// libsentencepiece, which is reached only through libshardtune_sentencepiece.so, loaded with
// dlopen on first use (sentencepiece_shim.h says why: Debian's libsentencepiece and LibTorch's
// libprotobuf cannot share one link). The library is looked for at
// $SHARDTUNE_SENTENCEPIECE_LIBRARY, where the build put it, and beside the executable (and in
// ../lib from it). The model's own BOS/EOS/pad/unk ids are used unless set_roles names others
// (a model folder's tokenizer_config.json).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizers/text_tokenizer.h"

struct stsp_model;

namespace shardtune::io::tokenizers {

inline constexpr std::size_t kMaxSentencePieceBytes = 64u << 20;

class SentencePieceTokenizer final : public TextTokenizer {
 public:
  static std::unique_ptr<SentencePieceTokenizer> from_file(const std::string& path);
  // A serialized ModelProto; `source` names it in errors.
  static std::unique_ptr<SentencePieceTokenizer> parse(std::string_view bytes, const std::string& source);
  ~SentencePieceTokenizer() override;

  // Non-empty names replace the model's own role tokens; an empty pad with no pad piece in the
  // model falls back to EOS. Throws UserError naming `where` for a name that is not a piece.
  void set_roles(const std::string& bos, const std::string& eos, const std::string& pad,
                 const std::string& where);

  using TextTokenizer::decode;
  using TextTokenizer::encode;
  // parse_special: control pieces ("<s>", "</s>") and the unknown piece written in the text become
  // their ids; each stretch of text between them is encoded separately (with SentencePiece's
  // dummy-prefix space, as Hugging Face's legacy Llama tokenizer does).
  std::vector<int64_t> encode(std::string_view text, const EncodeOptions& options) const override;
  std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const override;
  int64_t vocab_size() const override;
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }
  std::string identity() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t unk_id() const override { return unk_; }
  std::vector<AddedToken> added_tokens() const override;
  std::string kind() const override { return "sentencepiece"; }

  // The functions of libshardtune_sentencepiece.so (defined in the .cpp).
  struct Api;

 private:
  SentencePieceTokenizer();
  void encode_plain(std::string_view text, std::vector<int64_t>& out) const;

  const Api* api_ = nullptr;
  stsp_model* model_ = nullptr;
  int piece_size_ = 0;
  std::vector<int> piece_type_;  // bit 0 control, bit 1 unknown
  std::string source_;
  uint64_t content_hash_ = 0;
  std::vector<std::pair<std::string, int64_t>> special_pieces_;  // longest first
  int64_t bos_ = kNoToken, eos_ = kNoToken, pad_ = kNoToken, unk_ = kNoToken;
};

}  // namespace shardtune::io::tokenizers
