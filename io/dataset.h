// Datasets: text records from JSONL or WordNet, and their tokenized form.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/example.h"
#include "io/tokenizer.h"

namespace shardtune::io {

// One training record. Language modelling: prompt empty, response = text, every token trained.
// Supervised: loss on the response only (unless train_on_prompt).
struct Record {
  std::string prompt;
  std::string response;
};

// Reads JSONL where each non-blank line is one object of one of these forms:
//   {"text": "..."}                                   -> Record{"", text}
//   {"prompt": "...", "response": "..."}              -> Record{prompt, response}
//   {"instruction": "...", "input": "...", "output": "..."} (Alpaca; input optional)
//        -> Record{instruction + ("\n" + input if non-empty) + "\n", output}
// Throws UserError "FILE:LINE: reason" for a malformed line, "FILE: cannot open" when unreadable,
// and "FILE: no records" for an empty dataset.
std::vector<Record> read_jsonl(const std::string& path);

// A tokenized example: [BOS] prompt response [EOS], truncated to max_len tokens.
// labels[i] is the token to be predicted *at* position i (same as tokens[i]; the loss shifts),
// or -100 where the loss ignores it (BOS, prompt tokens unless train_on_prompt).
using core::Example;
using core::kIgnoreIndex;

Example tokenize(const Record& record, const Tokenizer& tokenizer, int64_t max_len,
                 bool train_on_prompt);

std::vector<Example> tokenize_all(const std::vector<Record>& records, const Tokenizer& tokenizer,
                                  int64_t max_len, bool train_on_prompt);

}  // namespace shardtune::io
