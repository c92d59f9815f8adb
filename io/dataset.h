// Datasets: text records from JSONL or WordNet, and their tokenized form.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/example.h"
#include "core/tokenizer.h"

namespace shardtune::io {

// One training record. Language modelling: prompt empty, response = text, every token trained.
// Supervised: loss on the response only (unless train_on_prompt).
// One turn of a conversation: role is "system", "user" or "assistant".
struct Message {
  std::string role;
  std::string content;
};

struct Record {
  std::string prompt;
  std::string response;
  // Multi-turn records (JSONL "messages"): every turn rendered as "<role>: <content>\n"; the
  // loss covers the content (and its newline) of assistant turns only, plus the final EOS when
  // the last turn is the assistant's. prompt/response then hold the text before and the content
  // of the last assistant turn (what generation is asked to reproduce).
  std::vector<Message> messages = {};  // "= {}": Record{prompt, response} needs no third field
};

// Reads JSONL where each non-blank line is one object of one of these forms:
//   {"text": "..."}                                   -> Record{"", text}
//   {"prompt": "...", "response": "..."}              -> Record{prompt, response}
//   {"instruction": "...", "input": "...", "output": "..."} (Alpaca; input optional)
//        -> Record{instruction + ("\n" + input if non-empty) + "\n", output}
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//        -> multi-turn Record (at least one assistant turn)
// Throws UserError "FILE:LINE: reason" for a malformed line, "FILE: cannot open" when unreadable,
// and "FILE: no records" for an empty dataset.
std::vector<Record> read_jsonl(const std::string& path);

// A tokenized example: [BOS] prompt response [EOS], truncated to max_len tokens.
// labels[i] is the token to be predicted *at* position i (same as tokens[i]; the loss shifts),
// or -100 where the loss ignores it (BOS, prompt tokens unless train_on_prompt; for multi-turn
// records every non-assistant turn and the "assistant: " headers).
using core::Example;
using core::kIgnoreIndex;

Example tokenize(const Record& record, const core::Tokenizer& tokenizer, int64_t max_len,
                 bool train_on_prompt);

std::vector<Example> tokenize_all(const std::vector<Record>& records,
                                  const core::Tokenizer& tokenizer,
                                  int64_t max_len, bool train_on_prompt);

}  // namespace shardtune::io
