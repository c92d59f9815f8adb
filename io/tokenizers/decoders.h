// tokenizer.json "decoder": turns the token strings of a sequence back into text.
// Supported: ByteLevel, Metaspace, Replace (string pattern), ByteFallback, Fuse, Strip, Sequence.
// Each works on the list of token strings (Hugging Face's decode_chain), so their order matters
// exactly as in the file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/tokenizers/json_util.h"

namespace shardtune::io::tokenizers {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for a JSON null.
std::unique_ptr<Decoder> parse_decoder(const JsonField& field);

// GPT-2's decoder (vocab.json + merges.txt has no tokenizer.json to name it).
std::unique_ptr<Decoder> make_byte_level_decoder();

}  // namespace shardtune::io::tokenizers
