// `shardtune tokenize`: encode text to ids, or decode ids to text, with any tokenizer ShardTune
// can load, so users can check which ids their data and chat templates become.
//
//   shardtune tokenize --tokenizer PATH --text STRING [--no-special]
//       prints the ids separated by spaces (no BOS/EOS added); --no-special encodes special-token
//       text such as "<|im_start|>" as plain text
//   shardtune tokenize --tokenizer PATH --decode "1 2 3" [--keep-special]
//       prints the text; special tokens are dropped unless --keep-special
//   shardtune tokenize --tokenizer PATH --info
//       prints the format, identity, vocabulary size and BOS/EOS/pad/unk ids
//
// PATH is a tokenizer file or a model folder (io/tokenizers/loader.h), or `byte` for the built-in
// byte tokenizer. Runs in one process, without MPI.
#pragma once

#include <string>
#include <vector>

namespace shardtune::launch {

// `args` are the words after `tokenize`. Returns the exit code: 0, or kUserErrorExitCode after
// printing one error line (bad arguments, unreadable or malformed tokenizer, invalid UTF-8, an id
// outside the vocabulary).
int run_tokenize(const std::vector<std::string>& args);

}  // namespace shardtune::launch
