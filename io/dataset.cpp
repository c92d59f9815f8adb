// JSONL datasets and tokenization into (tokens, labels) examples.
#include "io/dataset.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/errors.h"

namespace shardtune::io {
namespace {

using nlohmann::json;

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1, " —
// the id is noise to a user, and "line 1" is wrong (we parse one file line at a time, and the
// real line is already in our prefix), so keep only the column and the reason.
std::string clean_parse_error(const std::string& what) {
  std::string msg = what;
  if (!msg.empty() && msg.front() == '[') {
    const size_t close = msg.find("] ");
    if (close != std::string::npos) msg.erase(0, close + 2);
  }
  const std::string kLine1 = "parse error at line 1, ";
  if (msg.compare(0, kLine1.size(), kLine1) == 0) msg.erase(0, kLine1.size());
  return msg;
}

// Reads one of the record's string fields; a present key of the wrong type is a user error that
// names the key, since silently converting (or skipping) would train on something unintended.
std::string get_string(const json& object, const char* key, const std::string& where) {
  const json& value = object.at(key);
  if (!value.is_string()) {
    throw UserError(where + ": \"" + key + "\" must be a string, got " + value.type_name());
  }
  return value.get<std::string>();
}

std::string render_turn(const Message& m) { return m.role + ": " + m.content + "\n"; }

Record parse_messages(const json& list, const std::string& where) {
  if (!list.is_array() || list.empty()) {
    throw UserError(where + ": \"messages\" must be a non-empty array of {role, content}");
  }
  Record record;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = where + ": messages[" + std::to_string(i) + "]";
    const json& m = list[i];
    if (!m.is_object() || !m.contains("role") || !m.contains("content")) {
      throw UserError(at + " must be an object with \"role\" and \"content\"");
    }
    Message message{get_string(m, "role", at), get_string(m, "content", at)};
    if (message.role != "system" && message.role != "user" && message.role != "assistant") {
      throw UserError(at + ": role '" + message.role +
                      "' is unknown (known: system, user, assistant)");
    }
    record.messages.push_back(std::move(message));
  }
  size_t last = record.messages.size();
  for (size_t i = 0; i < record.messages.size(); ++i) {
    if (record.messages[i].role == "assistant") last = i;
  }
  if (last == record.messages.size()) throw UserError(where + ": \"messages\" has no assistant turn");
  for (size_t i = 0; i < last; ++i) record.prompt += render_turn(record.messages[i]);
  record.prompt += "assistant: ";
  record.response = record.messages[last].content;
  return record;
}

Record parse_record(const std::string& line, const std::string& where) {
  json object;
  try {
    object = json::parse(line);
  } catch (const json::parse_error& e) {
    throw UserError(where + ": invalid JSON: " + clean_parse_error(e.what()));
  }
  if (!object.is_object()) {
    throw UserError(where + ": expected a JSON object, got " + std::string(object.type_name()));
  }
  if (object.contains("messages")) {
    if (object.size() != 1) {
      throw UserError(where + ": object mixes \"messages\" with other keys; use one form");
    }
    return parse_messages(object.at("messages"), where);
  }
  const bool has_text = object.contains("text");
  const bool has_prompt = object.contains("prompt") || object.contains("response");
  const bool has_alpaca = object.contains("instruction") || object.contains("output");
  const int forms = int(has_text) + int(has_prompt) + int(has_alpaca);
  if (forms == 0) {
    throw UserError(where + ": object has none of the keys text, prompt/response, instruction/output");
  }
  // A line carrying two forms is ambiguous about what to train on; refuse rather than guess.
  if (forms > 1) {
    throw UserError(where +
                    ": object mixes the forms text, prompt/response, instruction/output; use one");
  }
  if (has_text) return Record{"", get_string(object, "text", where)};
  if (has_prompt) {
    if (!object.contains("prompt")) throw UserError(where + ": object has \"response\" but no \"prompt\"");
    if (!object.contains("response")) throw UserError(where + ": object has \"prompt\" but no \"response\"");
    return Record{get_string(object, "prompt", where), get_string(object, "response", where)};
  }
  if (!object.contains("instruction")) {
    throw UserError(where + ": object has \"output\" but no \"instruction\"");
  }
  if (!object.contains("output")) {
    throw UserError(where + ": object has \"instruction\" but no \"output\"");
  }
  std::string prompt = get_string(object, "instruction", where);
  if (object.contains("input")) {
    const std::string input = get_string(object, "input", where);
    if (!input.empty()) prompt += "\n" + input;
  }
  prompt += "\n";
  return Record{std::move(prompt), get_string(object, "output", where)};
}

}  // namespace

std::vector<Record> read_jsonl(const std::string& path) {
  // An ifstream "opens" a directory on Linux and then reads nothing, which would surface as the
  // misleading "no records"; check for it up front.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UserError(path + ": cannot open (a directory)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open");
  std::vector<Record> records;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (is_blank(line)) continue;
    records.push_back(parse_record(line, path + ":" + std::to_string(line_no)));
  }
  // getline ends the loop at EOF or on an I/O error; only the latter sets badbit.
  if (in.bad()) throw UserError(path + ": read error after line " + std::to_string(line_no));
  if (records.empty()) throw UserError(path + ": no records");
  return records;
}

namespace {
Example tokenize_messages(const Record& record, const core::Tokenizer& tokenizer,
                          int64_t max_len,
                          bool train_on_prompt) {
  Example example;
  auto add = [&](const std::string& text, bool trained) {
    for (int64_t id : tokenizer.encode(text)) {
      example.tokens.push_back(id);
      example.labels.push_back(trained || train_on_prompt ? id : kIgnoreIndex);
    }
  };
  example.tokens.push_back(tokenizer.bos_id());
  example.labels.push_back(kIgnoreIndex);
  for (const auto& m : record.messages) {
    const bool assistant = m.role == "assistant";
    add(m.role + ": ", false);
    add(m.content + "\n", assistant);
  }
  const bool ends_with_assistant = record.messages.back().role == "assistant";
  example.tokens.push_back(tokenizer.eos_id());
  example.labels.push_back(ends_with_assistant || train_on_prompt ? tokenizer.eos_id()
                                                                  : kIgnoreIndex);
  if (static_cast<int64_t>(example.tokens.size()) > max_len) {
    example.tokens.resize(static_cast<size_t>(max_len));
    example.labels.resize(static_cast<size_t>(max_len));
  }
  return example;
}
}  // namespace

Example tokenize(const Record& record, const core::Tokenizer& tokenizer, int64_t max_len,
                 bool train_on_prompt) {
  require(max_len >= 2, "tokenize: max_len must be at least 2 (BOS and one token), got " +
                            std::to_string(max_len));
  if (!record.messages.empty()) return tokenize_messages(record, tokenizer, max_len, train_on_prompt);
  const std::vector<int64_t> prompt = tokenizer.encode(record.prompt);
  const std::vector<int64_t> response = tokenizer.encode(record.response);

  Example example;
  std::vector<int64_t>& tokens = example.tokens;
  tokens.reserve(prompt.size() + response.size() + 2);
  tokens.push_back(tokenizer.bos_id());
  tokens.insert(tokens.end(), prompt.begin(), prompt.end());
  tokens.insert(tokens.end(), response.begin(), response.end());
  tokens.push_back(tokenizer.eos_id());
  // Truncation keeps the start: the prompt conditions the response, so cutting the tail (and the
  // EOS with it) loses less than cutting the head would.
  if (static_cast<int64_t>(tokens.size()) > max_len) tokens.resize(static_cast<size_t>(max_len));

  example.labels = tokens;
  // BOS is never a prediction target; prompt tokens are context only unless asked otherwise.
  const size_t masked = train_on_prompt ? 1 : 1 + prompt.size();
  for (size_t i = 0; i < masked && i < example.labels.size(); ++i) {
    example.labels[i] = kIgnoreIndex;
  }
  return example;
}

std::vector<Example> tokenize_all(const std::vector<Record>& records,
                                  const core::Tokenizer& tokenizer,
                                  int64_t max_len, bool train_on_prompt) {
  std::vector<Example> examples;
  examples.reserve(records.size());
  for (const Record& record : records) {
    examples.push_back(tokenize(record, tokenizer, max_len, train_on_prompt));
  }
  return examples;
}

}  // namespace shardtune::io
