// tokenizer.json "pre_tokenizer": splits normalized text into pieces that BPE encodes one by one.
// Supported: Split (a string or a PCRE2 regex; behaviours Isolated, Removed, MergedWithPrevious,
// MergedWithNext, Contiguous; invert), ByteLevel (add_prefix_space, use_regex with GPT-2's
// pattern), Metaspace (replacement, prepend_scheme always/first/never, split), Digits, Sequence.
//
// ByteLevel maps bytes to GPT-2's characters; here that mapping is left to the BPE model (it
// works on bytes directly), so ByteLevel must be the last step: a step after it would see
// unmapped bytes. That order is what every byte-level tokenizer uses; others are refused.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizers/json_util.h"

namespace shardtune::io::tokenizers {

struct Piece {
  std::string_view text;
  // The piece starts where the whole input starts (Metaspace's prepend_scheme "first").
  bool at_start = false;
};

// Owns the text of pieces that a step rewrote; views into it stay valid until clear().
class PieceStore {
 public:
  std::string_view keep(std::string s) {
    storage_.push_back(std::move(s));
    return storage_.back();
  }
  void clear() { storage_.clear(); }

 private:
  std::deque<std::string> storage_;  // a deque never moves its elements
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends the pieces of every piece of `in` to `out` (empty pieces are dropped).
  virtual void apply(const std::vector<Piece>& in, std::vector<Piece>& out, PieceStore& store) const = 0;
};

struct PreTokenizerChain {
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  // A ByteLevel step ends the chain: the model maps bytes to GPT-2 characters.
  bool byte_level = false;

  // Splits `text` into `out` (which it clears).
  void run(std::string_view text, bool at_start, std::vector<Piece>& out, PieceStore& store) const;
};

// An empty chain (the whole text is one piece) for a JSON null.
PreTokenizerChain parse_pre_tokenizer(const JsonField& field);

// The ByteLevel step built in code (GPT-2's vocab.json + merges.txt have no tokenizer.json).
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);

}  // namespace shardtune::io::tokenizers
