// `shardtune preprocess`: a JSONL file tokenized by every rank of a world at once into one token
// dataset (io/token_dataset.h).
//
// Rank r of W reads the lines that start in bytes [r * S / W, (r + 1) * S / W) of the file (S its
// size; io::JsonlLineReader), parses and encodes them, and writes its documents after those of
// ranks 0..r-1: the file holds the documents in the order of the lines, whatever W is. Encoding
// is the caller's (the training pipeline's own record -> example function), so preprocessing and
// reading JSONL at training time make the same examples.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/example.h"
#include "io/jsonl.h"
#include "io/token_dataset.h"
#include "parallel/communicator.h"

namespace shardtune::io {

// Turns one parsed line into its document (not truncated). `where` is "FILE:LINE" for errors.
using DocumentEncoder =
    std::function<core::Example(const JsonlRecord& record, const std::string& where)>;

struct PreprocessStats {
  TokenDatasetInfo info;   // as written (documents, tokens)
  int64_t trained_tokens = 0;  // tokens whose label is set, over all ranks
  int64_t longest = 0;         // tokens in the longest document
};

// Collective over `world`. Any rank's error (an unreadable file, a malformed line, an id outside
// the vocabulary) ends the call on every rank with the same UserError: the first in file order
// (the lowest failing rank's). Blank lines are skipped; a file without records is an error.
PreprocessStats preprocess_jsonl(const std::string& input, const std::string& output,
                                 const TokenDatasetInfo& info, const DocumentEncoder& encode,
                                 parallel::Communicator& world);

}  // namespace shardtune::io
