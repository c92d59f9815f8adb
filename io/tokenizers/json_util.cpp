// Typed access with file/field names in every error.
#include "io/tokenizers/json_util.h"

#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

using nlohmann::json;

nlohmann::json read_json_file(const std::string& path, std::size_t max_bytes) {
  return parse_json_strict(read_file_capped(path, max_bytes), path);
}

const char* json_kind(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "binary";
  }
}

void JsonField::fail(const std::string& message) const { throw UserError(where + " " + message); }

void JsonField::expect(bool ok, const std::string& message) const {
  if (!ok) fail(message);
}

void JsonField::expect_kind(bool ok, const char* wanted) const {
  if (!ok) fail(std::string("expected ") + wanted + ", got " + json_kind(value));
}

bool JsonField::has(const char* key) const { return value.is_object() && value.contains(key); }

bool JsonField::present(const char* key) const {
  return value.is_object() && value.contains(key) && !value.at(key).is_null();
}

JsonField JsonField::at(const char* key) const {
  expect_kind(value.is_object(), "an object");
  const auto it = value.find(key);
  if (it == value.end()) fail(std::string("has no field \"") + key + "\"");
  const bool top = !where.empty() && where.back() == ':';
  return JsonField{*it, where + (top ? " " : ".") + key};
}

JsonField JsonField::at(std::size_t index) const {
  expect_kind(value.is_array(), "an array");
  if (index >= value.size()) fail("has no element " + std::to_string(index));
  return JsonField{value[index], where + "[" + std::to_string(index) + "]"};
}

const json::object_t& JsonField::object() const {
  expect_kind(value.is_object(), "an object");
  return value.get_ref<const json::object_t&>();
}

const json::array_t& JsonField::array() const {
  expect_kind(value.is_array(), "an array");
  return value.get_ref<const json::array_t&>();
}

const std::string& JsonField::string() const {
  expect_kind(value.is_string(), "a string");
  return value.get_ref<const std::string&>();
}

bool JsonField::boolean() const {
  expect_kind(value.is_boolean(), "a boolean");
  return value.get<bool>();
}

int64_t JsonField::integer(int64_t lo, int64_t hi) const {
  expect_kind(value.is_number_integer() || value.is_number_unsigned(), "an integer");
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    fail("is out of range");
  }
  const int64_t v = value.get<int64_t>();
  if (v < lo || v > hi) {
    fail(std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return v;
}

std::string JsonField::string_or(const char* key, const std::string& fallback) const {
  return present(key) ? at(key).string() : fallback;
}

bool JsonField::bool_or(const char* key, bool fallback) const {
  return present(key) ? at(key).boolean() : fallback;
}

}  // namespace shardtune::io::tokenizers
