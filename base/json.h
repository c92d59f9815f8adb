// Strict JSON for untrusted files (safetensors headers, config.json, tokenizer.json, adapter
// configs): nlohmann's parser with a nesting cap and duplicate keys refused (nlohmann keeps the
// last one silently, so the file would mean two things). One implementation for every reader.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace shardtune::base {

inline constexpr int kMaxJsonDepth = 64;

// The first thing wrong with a text, for callers that word their own errors (the JSONL reader
// names file:line and cleans nlohmann's message). `detail`: the parser's message for kSyntax, the
// key (as written) for kDuplicateKey.
struct JsonProblem {
  enum Kind { kNone, kSyntax, kTooDeep, kDuplicateKey } kind = kNone;
  std::string detail;
};

// Parses `text` with objects and arrays nested at most `max_depth` deep and no key twice in one
// object. Never throws: on a problem the result is unusable and `problem` says why.
nlohmann::json parse_json_checked(std::string_view text, int max_depth, JsonProblem& problem);

// parse_json_checked with kMaxJsonDepth; `source` names the text in errors ("m.safetensors: header"). Throws UserError, one
// line: "<source>: not valid JSON: ...", "<source>: nesting deeper than 64 levels" or
// "<source>: the key "k" appears twice in one object". Accepts any top-level value.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source);

}  // namespace shardtune::base
