// The BPE model of tokenizer.json (and of GPT-2's vocab.json + merges.txt): a vocabulary, merge
// rules ordered by rank, and the options Llama/Qwen/GPT-2/Mistral files use (ignore_merges,
// byte_fallback, unk_token, fuse_unk). Encodes one pre-tokenized piece at a time.
//
// Byte-level mode (the pre-tokenizer chain ends in ByteLevel): a piece's bytes map straight to
// the ids of GPT-2's byte characters, without building the mapped string. Otherwise each UTF-8
// character is looked up, falling back to "<0xXX>" byte tokens or the unknown token.
//
// Merging uses a hash map from id pairs to (rank, merged id); pieces up to kLinearMergeLimit
// symbols use an array scan, longer ones a heap (O(n log n), so a megabyte-long word cannot
// stall). Short pieces (most words) are cached per thread in a direct-mapped table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace shardtune::io::tokenizers {

class BpeModel {
 public:
  struct Options {
    bool byte_level = false;     // pieces are raw bytes; initial symbols are GPT-2 byte characters
    bool ignore_merges = false;  // a piece that is itself a token is emitted whole
    bool byte_fallback = false;  // characters missing from the vocabulary become <0xXX> tokens
    bool fuse_unk = false;       // consecutive unknown characters become one unknown token
    int32_t unk_id = -1;         // -1: none
  };
  static constexpr std::size_t kLinearMergeLimit = 64;

  // `vocab` maps token text to id; `merges` are (left, right) token texts by rank. `where` names
  // the source in errors. Throws UserError if a merge names a token not in the vocabulary or
  // makes one that is not in it, or (byte-level) if a byte character is missing.
  BpeModel(std::unordered_map<std::string, int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, Options options,
           const std::string& where);

  // Appends the ids of `piece` (non-empty; valid UTF-8 unless byte-level). Throws UserError for a
  // character the vocabulary cannot represent.
  void encode_piece(std::string_view piece, std::vector<int64_t>& out) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  const Options& options() const { return options_; }

 private:
  struct MergeTable {
    std::vector<uint64_t> keys;    // (left << 32) | right; kEmpty where unused
    std::vector<uint64_t> values;  // (rank << 32) | merged id
    uint64_t mask = 0;
    static constexpr uint64_t kEmpty = ~0ULL;
    void build(const std::vector<std::pair<uint64_t, uint64_t>>& entries);
    // false when the pair has no merge.
    bool find(int32_t left, int32_t right, uint32_t& rank, int32_t& merged) const;
  };

  void initial_symbols(std::string_view piece, std::vector<int32_t>& symbols) const;
  void merge_linear(std::vector<int32_t>& symbols) const;
  void merge_heap(std::vector<int32_t>& symbols) const;

  std::unordered_map<std::string, int32_t> vocab_;
  Options options_;
  MergeTable merges_;
  int32_t byte_ids_[256];           // byte-level: id of each byte's character
  int32_t fallback_ids_[256];       // byte_fallback: id of "<0xXX>", -1 if absent
  int32_t ascii_ids_[128];          // non-byte-level: id of each ASCII character, -1 if absent
  uint64_t serial_;                 // tells per-thread caches which model they belong to
};

}  // namespace shardtune::io::tokenizers
