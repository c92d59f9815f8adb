// Picks and loads the tokenizer a path names.
//
// A folder (a Hugging Face model folder) is searched in this order:
//   1. tokenizer.json                      -> HfBpeTokenizer (kind "hf-bpe")
//   2. vocab.json + merges.txt             -> HfBpeTokenizer (kind "gpt2-bpe")
//   3. encoder.json + vocab.bpe            -> the same pair under OpenAI's names
//   4. tokenizer.model                     -> SentencePieceTokenizer
// A file is taken by its name: *.model is SentencePiece; vocab.json / encoder.json and
// merges.txt / vocab.bpe need their partner beside them; any other *.json is a tokenizer.json.
//
// BOS/EOS/pad come from tokenizer_config.json in the folder (or the file's folder), else from
// special_tokens_map.json (each field a string, {"content": ...} or null). Without either, GPT-2's
// pair uses "<|endoftext|>" for all three, SentencePiece its model's ids, and tokenizer.json has
// none. A pad that is not named falls back to EOS.
//
// Anything else is one UserError naming the path.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/tokenizers/text_tokenizer.h"

namespace shardtune::io::tokenizers {

inline constexpr std::size_t kMaxTokenizerConfigBytes = 16u << 20;

struct TokenizerFiles {
  std::string kind;                 // "hf-bpe", "gpt2-bpe", "sentencepiece"
  std::vector<std::string> files;   // the model files, in the order the loader reads them
  std::string roles_file;           // tokenizer_config.json / special_tokens_map.json, or empty
};

// Which files `path` resolves to; UserError if none.
TokenizerFiles find_tokenizer_files(const std::string& path);

std::unique_ptr<TextTokenizer> load_tokenizer(const std::string& path);

}  // namespace shardtune::io::tokenizers
