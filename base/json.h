// Strict JSON for untrusted files (safetensors headers, config.json, tokenizer.json, adapter
// configs): nlohmann's parser with a nesting cap and duplicate keys refused (nlohmann keeps the
// last one silently, so the file would mean two things). One implementation for every reader.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace shardtune::base {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; `source` names it in errors ("m.safetensors: header"). Throws UserError, one
// line: "<source>: not valid JSON: ...", "<source>: nesting deeper than 64 levels" or
// "<source>: the key "k" appears twice in one object". Accepts any top-level value.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source);

}  // namespace shardtune::base
