// JSONL training data: one JSON object per line, read as untrusted input. Free of LibTorch (the
// fuzz target tests/fuzz/fuzz_jsonl.cpp links it alone).
//
// Forms (one per line; a line that carries two forms is refused as ambiguous; other keys, such as
// an "id", are ignored):
//   {"text": "..."}                                              language modelling
//   {"prompt": "...", "response": "..."}                         supervised
//   {"instruction": "...", "input": "...", "output": "..."}      Alpaca ("input" optional)
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//   {"conversations": [{"from": "system"|"human"|"user"|"gpt"|"assistant", "value": "..."}, ...],
//    "system": "..."}                                            ShareGPT ("system" optional)
//   {"input_ids": [17, 42, ...], "labels": [-100, 42, ...]}      pre-tokenized ("labels" optional)
//
// Every failure is one UserError "FILE:LINE: FIELD: reason" (FIELD as JSON path, e.g.
// `"conversations"[2].from`), never a crash: lines longer than kMaxJsonlLineBytes, JSON nested
// deeper than kMaxJsonlDepth, a key repeated in one object, invalid UTF-8, a field of the wrong
// type, an unknown role, a conversation without an assistant turn, ids outside [0, kMaxTokenId].
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace shardtune::io {

inline constexpr std::size_t kMaxJsonlLineBytes = std::size_t{64} << 20;
inline constexpr int kMaxJsonlDepth = 16;
// Token ids beyond this cannot be a vocabulary index (the largest vocabularies are ~2^18).
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 31) - 1;
inline constexpr int64_t kJsonlIgnoreLabel = -100;

enum class JsonlForm { kText, kPromptResponse, kAlpaca, kMessages, kShareGpt, kTokens };

// "text", "prompt/response", "alpaca", "messages", "sharegpt", "input_ids".
const char* jsonl_form_name(JsonlForm form);

// One turn of a conversation. ShareGPT's "from" is mapped to these roles (human -> user,
// gpt -> assistant).
struct JsonlTurn {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// What one line says, by form:
//   kText:           text
//   kPromptResponse: prompt, response
//   kAlpaca:         prompt = instruction, input, response = output
//   kMessages, kShareGpt: turns (a ShareGPT top-level "system" becomes the first turn); at least
//                    one assistant turn; "system" turns only before the first other turn
//   kTokens:         input_ids; labels empty (every token trained) or as long as input_ids with
//                    each entry either input_ids[i] or -100 (ShardTune's labels name the token at
//                    the position itself; the loss shifts)
struct JsonlRecord {
  JsonlForm form = JsonlForm::kText;
  std::string text;
  std::string prompt;
  std::string response;
  std::string input;
  std::vector<JsonlTurn> turns;
  std::vector<int64_t> input_ids;
  std::vector<int64_t> labels;
};

// Parses one line (without its newline). `where` names it in errors ("data.jsonl:7").
JsonlRecord parse_jsonl_line(std::string_view line, const std::string& where);

// Whether a line holds only whitespace (such lines are skipped, not records).
bool is_blank_line(std::string_view line);

// Reads the lines of a file, or of the share of a file that starts in a byte range, with their
// 1-based line numbers. A line belongs to the range that holds its first byte, so ranges
// [0, a), [a, b), [b, size) together visit every line exactly once. Lines are capped at
// kMaxJsonlLineBytes (longer is a UserError naming file and line); "\r\n" endings lose the "\r".
class JsonlLineReader {
 public:
  // The whole file. UserError "PATH: cannot open" (also for a folder).
  explicit JsonlLineReader(const std::string& path);
  // Lines whose first byte lies in [begin, end) (end clamped to the file size).
  JsonlLineReader(const std::string& path, uint64_t begin, uint64_t end);
  ~JsonlLineReader();
  JsonlLineReader(const JsonlLineReader&) = delete;
  JsonlLineReader& operator=(const JsonlLineReader&) = delete;

  // The next line and its number; false at the end of the range.
  bool next(std::string& line, int64_t& line_no);
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }

 private:
  void open(uint64_t begin, uint64_t end);
  bool fill();  // more bytes into buf_; false at end of file

  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t size_ = 0;
  uint64_t pos_ = 0;      // file offset of buf_[head_]
  uint64_t end_ = 0;      // lines starting at or past this offset are not ours
  int64_t line_no_ = 0;   // number of the line that starts at pos_
  std::string buf_;
  std::size_t head_ = 0;  // unread bytes are buf_[head_, buf_.size())
};

// The size of a file in bytes (UserError "PATH: cannot open" when it is not a readable file).
uint64_t jsonl_file_size(const std::string& path);

// Calls fn(record, "PATH:LINE") for every record of a file, in order, skipping blank lines.
// UserError "PATH: no records" when there are none.
void for_each_jsonl_record(const std::string& path,
                           const std::function<void(JsonlRecord&&, const std::string&)>& fn);

// Every record of a file, in order (for_each_jsonl_record).
std::vector<JsonlRecord> read_jsonl_records(const std::string& path);

}  // namespace shardtune::io
