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
  // Pre-tokenized records (JSONL {"input_ids": [...], "labels": [...]}): the ids as given, no
  // BOS/EOS added; labels empty = every token trained. `where` ("FILE:LINE") names the record in
  // errors (ids checked against the model's vocabulary by load_datasets).
  std::vector<int64_t> input_ids = {};
  std::vector<int64_t> labels = {};
  std::string where = {};  // "FILE:LINE" of a JSONL record ("" for other sources)
  // Alpaca records keep their parts for chat templates (the alpaca template renders `input` as
  // its own section); prompt holds them joined as above.
  bool alpaca = false;
  std::string instruction = {};
  std::string input = {};
};

class ChatTemplate;  // io/chat_template.h
struct JsonlRecord;  // io/jsonl.h

// One parsed JSONL line (io/jsonl.h) as a Record; `where` is "FILE:LINE". read_jsonl below and
// `shardtune preprocess` (io/data.h jsonl_encoder) both go through it.
Record to_record(JsonlRecord&& record, const std::string& where);

// Reads JSONL (io/jsonl.h, untrusted input) where each non-blank line is one object of one of
// these forms:
//   {"text": "..."}                                   -> Record{"", text}
//   {"prompt": "...", "response": "..."}              -> Record{prompt, response}
//   {"instruction": "...", "input": "...", "output": "..."} (Alpaca; input optional)
//        -> Record{instruction + ("\n" + input if non-empty) + "\n", output}
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//        -> multi-turn Record (at least one assistant turn)
//   {"conversations": [{"from": "human"|"gpt"|..., "value": "..."}, ...]} (ShareGPT) -> the same
//   {"input_ids": [...], "labels": [...]}             -> pre-tokenized Record (labels optional)
// Throws UserError "FILE:LINE: reason" for a malformed line, "FILE: cannot open" when unreadable,
// and "FILE: no records" for an empty dataset.
std::vector<Record> read_jsonl(const std::string& path);

// A tokenized example: [BOS] prompt response [EOS], truncated to max_len tokens.
// labels[i] is the token to be predicted *at* position i (same as tokens[i]; the loss shifts),
// or -100 where the loss ignores it (BOS, prompt tokens unless train_on_prompt; for multi-turn
// records every non-assistant turn and the "assistant: " headers).
using core::Example;
using core::kIgnoreIndex;

// With a chat template ([data] chat_template), supervised records (prompt/response, Alpaca,
// messages, ShareGPT) are rendered by it instead (loss on assistant turns, io/chat_template.h);
// text and pre-tokenized records are not affected.
Example tokenize(const Record& record, const core::Tokenizer& tokenizer, int64_t max_len,
                 bool train_on_prompt, const ChatTemplate* chat = nullptr);

std::vector<Example> tokenize_all(const std::vector<Record>& records,
                                  const core::Tokenizer& tokenizer, int64_t max_len,
                                  bool train_on_prompt, const ChatTemplate* chat = nullptr);

}  // namespace shardtune::io
