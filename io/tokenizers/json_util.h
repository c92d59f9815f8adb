// JSON reading for untrusted tokenizer files: the strict parser of base/json.h behind a size cap,
// and typed field access whose errors name the file and the field ("tokenizer.json: model.vocab: expected an object, got array").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/json.h"

namespace shardtune::io::tokenizers {

// The strict parser every reader of untrusted JSON uses (base/json.h).
using base::parse_json_strict;

// read_file_capped + parse_json_strict.
nlohmann::json read_json_file(const std::string& path, std::size_t max_bytes);

// "null", "boolean", "number", "string", "array", "object".
const char* json_kind(const nlohmann::json& j);

// A view of one JSON value together with where it came from, for error messages.
struct JsonField {
  const nlohmann::json& value;
  std::string where;  // "tokenizer.json: model.vocab"

  [[noreturn]] void fail(const std::string& message) const;
  void expect(bool ok, const std::string& message) const;
  void expect_kind(bool ok, const char* wanted) const;

  bool has(const char* key) const;
  // Member `key` of this object (which must be one); UserError when absent.
  JsonField at(const char* key) const;
  JsonField at(std::size_t index) const;
  // Member `key` if present and not null.
  bool present(const char* key) const;

  const nlohmann::json::object_t& object() const;
  const nlohmann::json::array_t& array() const;
  const std::string& string() const;
  bool boolean() const;
  // An integer in [lo, hi].
  int64_t integer(int64_t lo, int64_t hi) const;

  // Typed optional members: the default when the member is absent or null.
  std::string string_or(const char* key, const std::string& fallback) const;
  bool bool_or(const char* key, bool fallback) const;
};

inline JsonField json_root(const nlohmann::json& j, const std::string& source) {
  return JsonField{j, source + ":"};
}

}  // namespace shardtune::io::tokenizers
