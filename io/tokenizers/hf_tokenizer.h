// Byte-level and SentencePiece-style BPE as Hugging Face defines it: tokenizer.json (Llama 3,
// Qwen2/3, Mistral, Llama 2's byte-fallback BPE) and GPT-2's vocab.json + merges.txt (also named
// encoder.json + vocab.bpe). The pipeline is HF's: added tokens are split out of the raw text,
// the rest is normalized, pre-tokenized and BPE-encoded piece by piece; decoding runs the decoder
// chain. The post-processor (which adds BOS/EOS) is not applied: encode never adds them.
//
// Every input is untrusted: files are size-capped, every JSON field type-checked, ids must be in
// [0, kMaxVocab) and unique, tokens unique, merges must name tokens of the vocabulary, and any
// violation is one UserError naming the file and field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/tokenizers/text_tokenizer.h"

namespace shardtune::io::tokenizers {

class BpeModel;
class Normalizer;
class Decoder;
struct PreTokenizerChain;

inline constexpr int64_t kMaxVocab = 1 << 22;
inline constexpr std::size_t kMaxTokenizerJsonBytes = 256u << 20;
inline constexpr std::size_t kMaxVocabJsonBytes = 64u << 20;
inline constexpr std::size_t kMaxMergesBytes = 64u << 20;

class HfBpeTokenizer final : public TextTokenizer {
 public:
  // tokenizer.json from a file, or from its text (`source` names it in errors).
  static std::unique_ptr<HfBpeTokenizer> from_tokenizer_json(const std::string& path);
  static std::unique_ptr<HfBpeTokenizer> parse_tokenizer_json(std::string_view text,
                                                              const std::string& source);
  // GPT-2's pair: vocab.json ({token: id}) and merges.txt ("#version" line optional, then one
  // "left right" pair per line). "<|endoftext|>", if in the vocabulary, is the special token
  // that serves as BOS, EOS and pad, as in GPT-2.
  static std::unique_ptr<HfBpeTokenizer> from_gpt2_files(const std::string& vocab_path,
                                                         const std::string& merges_path);
  static std::unique_ptr<HfBpeTokenizer> parse_gpt2(std::string_view vocab_json,
                                                    std::string_view merges_txt,
                                                    const std::string& source);
  ~HfBpeTokenizer() override;

  // Sets the BOS/EOS/pad roles by token text (empty: the role has no token). Throws UserError
  // naming `where` if a named token is not in the vocabulary. An absent pad falls back to EOS
  // (padding is masked out of the loss, so any id serves).
  void set_roles(const std::string& bos, const std::string& eos, const std::string& pad,
                 const std::string& where);

  using TextTokenizer::decode;
  using TextTokenizer::encode;
  std::vector<int64_t> encode(std::string_view text, const EncodeOptions& options) const override;
  std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }
  // "<kind>-v1:<16 hex digits>": a hash of the files' bytes and of the BOS/EOS/pad roles.
  std::string identity() const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t unk_id() const override { return unk_; }
  std::vector<AddedToken> added_tokens() const override;
  std::string kind() const override { return kind_; }

 private:
  struct Added {
    int32_t id;
    std::string content;  // as matched (normalized when `normalized`)
    bool special, single_word, lstrip, rstrip, normalized;
  };
  // Byte trie over added-token texts for leftmost-longest matching.
  struct Trie {
    struct Node {
      int32_t token = -1;  // index into added_, -1 if no token ends here
      std::vector<std::pair<unsigned char, int32_t>> children;
    };
    std::vector<Node> nodes{Node{}};
    bool first[256] = {};
    bool empty() const { return nodes.size() == 1; }
    void insert(std::string_view s, int32_t token);
    // Longest token starting at text[pos]: (index, length) or (-1, 0).
    std::pair<int32_t, std::size_t> longest(std::string_view text, std::size_t pos) const;
  };
  struct Segment {
    bool is_token;
    int32_t id;
    std::string_view text;
    bool at_start;
  };

  HfBpeTokenizer() = default;
  void finish(const std::string& where);
  void split_added(std::string_view text, bool at_start, const Trie& trie, bool parse_special,
                   std::vector<Segment>& out) const;
  void encode_text(std::string_view text, bool at_start, bool parse_special,
                   std::vector<int64_t>& out) const;

  std::string kind_;
  uint64_t content_hash_ = 0;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizerChain> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<Added> added_;
  Trie raw_trie_, normalized_trie_;
  std::vector<std::string> id_to_token_;
  std::vector<char> has_token_, is_special_;
  std::unordered_map<std::string, int32_t> added_ids_;
  int64_t bos_ = kNoToken, eos_ = kNoToken, pad_ = kNoToken, unk_ = kNoToken;
};

}  // namespace shardtune::io::tokenizers
