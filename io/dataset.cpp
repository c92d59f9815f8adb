// JSONL datasets and tokenization into (tokens, labels) examples.
#include "io/dataset.h"

#include "base/errors.h"
#include "io/chat_template.h"
#include "io/jsonl.h"

namespace shardtune::io {
namespace {

std::string render_turn(const Message& m) { return m.role + ": " + m.content + "\n"; }

}  // namespace

// Conversations keep every turn; prompt/response are the text before and the content of the last
// assistant turn (generation references).
Record to_record(JsonlRecord&& r, const std::string& where) {
  switch (r.form) {
    case JsonlForm::kText:
      return Record{"", std::move(r.text)};
    case JsonlForm::kPromptResponse:
      return Record{std::move(r.prompt), std::move(r.response)};
    case JsonlForm::kAlpaca: {
      std::string prompt = r.prompt;
      if (!r.input.empty()) prompt += "\n" + r.input;
      prompt += "\n";
      Record record{std::move(prompt), std::move(r.response)};
      record.alpaca = true;
      record.instruction = std::move(r.prompt);
      record.input = std::move(r.input);
      return record;
    }
    case JsonlForm::kMessages:
    case JsonlForm::kShareGpt: {
      Record record;
      for (auto& t : r.turns) record.messages.push_back({t.role, t.content});
      size_t last = 0;
      for (size_t i = 0; i < record.messages.size(); ++i) {
        if (record.messages[i].role == "assistant") last = i;
      }
      for (size_t i = 0; i < last; ++i) record.prompt += render_turn(record.messages[i]);
      record.prompt += "assistant: ";
      record.response = record.messages[last].content;
      return record;
    }
    case JsonlForm::kTokens: {
      Record record;
      record.input_ids = std::move(r.input_ids);
      record.labels = std::move(r.labels);
      record.where = where;
      return record;
    }
  }
  throw UserError(where + ": unknown record form");
}

std::vector<Record> read_jsonl(const std::string& path) {
  std::vector<Record> records;
  for_each_jsonl_record(path, [&](JsonlRecord&& r, const std::string& where) {
    records.push_back(to_record(std::move(r), where));
    records.back().where = where;
  });
  return records;
}

namespace {
Example tokenize_messages(const Record& record, const core::Tokenizer& tokenizer,
                          int64_t max_len,
                          bool train_on_prompt) {
  Example example;
  auto add = [&](const std::string& text, bool trained) {
    for (int64_t id : encode_plain(tokenizer, text)) {
      example.tokens.push_back(id);
      example.labels.push_back(trained || train_on_prompt ? id : kIgnoreIndex);
    }
  };
  // A tokenizer without BOS or EOS (Qwen has no BOS; none has neither) adds nothing there (-1).
  if (tokenizer.bos_id() >= 0) {
    example.tokens.push_back(tokenizer.bos_id());
    example.labels.push_back(kIgnoreIndex);
  }
  for (const auto& m : record.messages) {
    const bool assistant = m.role == "assistant";
    add(m.role + ": ", false);
    add(m.content + "\n", assistant);
  }
  const bool ends_with_assistant = record.messages.back().role == "assistant";
  if (tokenizer.eos_id() >= 0) {
    example.tokens.push_back(tokenizer.eos_id());
    example.labels.push_back(ends_with_assistant || train_on_prompt ? tokenizer.eos_id()
                                                                    : kIgnoreIndex);
  }
  if (static_cast<int64_t>(example.tokens.size()) > max_len) {
    example.tokens.resize(static_cast<size_t>(max_len));
    example.labels.resize(static_cast<size_t>(max_len));
  }
  return example;
}
}  // namespace

namespace {
// The turns a chat template renders for a supervised record; empty for text records.
std::vector<ChatTurn> chat_turns(const Record& record) {
  std::vector<ChatTurn> turns;
  if (!record.messages.empty()) {
    for (const auto& m : record.messages) turns.push_back({m.role, m.content});
  } else if (record.alpaca) {
    turns.push_back({"user", record.instruction, record.input});
    turns.push_back({"assistant", record.response});
  } else if (!record.prompt.empty()) {
    turns.push_back({"user", record.prompt});
    turns.push_back({"assistant", record.response});
  }
  return turns;
}
}  // namespace

Example tokenize(const Record& record, const core::Tokenizer& tokenizer, int64_t max_len,
                 bool train_on_prompt, const ChatTemplate* chat) {
  require(max_len >= 2, "tokenize: max_len must be at least 2 (BOS and one token), got " +
                            std::to_string(max_len));
  if (!record.input_ids.empty()) {
    // Pre-tokenized: the ids as given (no BOS/EOS added), the loss where labels say.
    Example example{record.input_ids, record.labels.empty() ? record.input_ids : record.labels};
    if (static_cast<int64_t>(example.tokens.size()) > max_len) {
      example.tokens.resize(static_cast<size_t>(max_len));
      example.labels.resize(static_cast<size_t>(max_len));
    }
    return example;
  }
  if (chat != nullptr) {
    if (const auto turns = chat_turns(record); !turns.empty()) {
      Example example = chat->encode(turns, train_on_prompt, record.where);
      if (static_cast<int64_t>(example.tokens.size()) > max_len) {
        example.tokens.resize(static_cast<size_t>(max_len));
        example.labels.resize(static_cast<size_t>(max_len));
      }
      return example;
    }
  }
  if (!record.messages.empty()) return tokenize_messages(record, tokenizer, max_len, train_on_prompt);
  // Special-token parsing off: text in the data cannot inject control tokens ("<|im_end|>").
  const std::vector<int64_t> prompt = encode_plain(tokenizer, record.prompt);
  const std::vector<int64_t> response = encode_plain(tokenizer, record.response);

  Example example;
  std::vector<int64_t>& tokens = example.tokens;
  tokens.reserve(prompt.size() + response.size() + 2);
  const bool bos = tokenizer.bos_id() >= 0;  // -1: the tokenizer has none (Qwen)
  if (bos) tokens.push_back(tokenizer.bos_id());
  tokens.insert(tokens.end(), prompt.begin(), prompt.end());
  tokens.insert(tokens.end(), response.begin(), response.end());
  if (tokenizer.eos_id() >= 0) tokens.push_back(tokenizer.eos_id());
  // Truncation keeps the start: the prompt conditions the response, so cutting the tail (and the
  // EOS with it) loses less than cutting the head would.
  if (static_cast<int64_t>(tokens.size()) > max_len) tokens.resize(static_cast<size_t>(max_len));

  example.labels = tokens;
  // BOS is never a prediction target; prompt tokens are context only unless asked otherwise.
  const size_t masked = (bos ? 1 : 0) + (train_on_prompt ? 0 : prompt.size());
  for (size_t i = 0; i < masked && i < example.labels.size(); ++i) {
    example.labels[i] = kIgnoreIndex;
  }
  return example;
}

std::vector<Example> tokenize_all(const std::vector<Record>& records,
                                  const core::Tokenizer& tokenizer, int64_t max_len,
                                  bool train_on_prompt, const ChatTemplate* chat) {
  std::vector<Example> examples;
  examples.reserve(records.size());
  for (const Record& record : records) {
    examples.push_back(tokenize(record, tokenizer, max_len, train_on_prompt, chat));
  }
  return examples;
}

}  // namespace shardtune::io
