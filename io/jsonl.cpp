// JSONL records: a strict per-line JSON parse (depth cap, duplicate keys refused) and the forms of
// jsonl.h with typed fields. The line reader is io/jsonl_reader.cpp.
#include "io/jsonl.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "base/json.h"

namespace shardtune::io {
namespace {

using nlohmann::json;

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1, ": the
// id is noise to a user and "line 1" is wrong (one file line is parsed at a time, and the real
// line is already in our prefix), so keep only the column and the reason.
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

json parse_strict(std::string_view line, const std::string& where) {
  base::JsonProblem problem;
  json j = base::parse_json_checked(line, kMaxJsonlDepth, problem);
  switch (problem.kind) {
    case base::JsonProblem::kSyntax:
      throw UserError(where + ": invalid JSON: " + clean_parse_error(problem.detail));
    case base::JsonProblem::kTooDeep:
      throw UserError(where + ": JSON nested deeper than " + std::to_string(kMaxJsonlDepth) +
                      " levels");
    case base::JsonProblem::kDuplicateKey:
      throw UserError(where + ": the key \"" + problem.detail + "\" appears twice in one object");
    case base::JsonProblem::kNone:
      break;
  }
  return j;
}

const char* kind(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "binary";
  }
}

// One field of the line with its JSON path, for errors "FILE:LINE: path: reason".
struct Field {
  const json& value;
  const std::string& where;
  std::string path;

  [[noreturn]] void fail(const std::string& reason) const {
    throw UserError(where + ": " + path + ": " + reason);
  }
  const std::string& string() const {
    if (!value.is_string()) fail(std::string("expected a string, got ") + kind(value));
    return value.get_ref<const std::string&>();
  }
  const json::array_t& array() const {
    if (!value.is_array()) fail(std::string("expected an array, got ") + kind(value));
    return value.get_ref<const json::array_t&>();
  }
  Field at(const char* key) const {
    if (!value.contains(key)) fail(std::string("missing \"") + key + "\"");
    return Field{value.at(key), where, path + "." + key};
  }
  Field at(std::size_t i) const {
    return Field{value.at(i), where, path + "[" + std::to_string(i) + "]"};
  }
};

Field member(const json& object, const char* key, const std::string& where) {
  return Field{object.at(key), where, key};
}

// Turns of "messages" or "conversations": each an object with a role key and a content key.
// Roles are checked for their order: at most one system turn, first; then user and assistant
// alternating from a user turn (what every chat template expects; Llama 2's raises otherwise);
// at least one assistant turn.
std::vector<JsonlTurn> parse_turns(const Field& list, const char* role_key, const char* content_key,
                                   bool sharegpt, std::vector<JsonlTurn> turns) {
  const json::array_t& items = list.array();
  if (items.empty()) {
    list.fail(std::string("must be a non-empty array of {\"") + role_key + "\", \"" + content_key +
              "\"} objects");
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Field item = list.at(i);
    if (!item.value.is_object() || !item.value.contains(role_key) ||
        !item.value.contains(content_key)) {
      item.fail(std::string("must be an object with \"") + role_key + "\" and \"" + content_key +
                "\"");
    }
    const Field role_field = item.at(role_key);
    std::string role = role_field.string();
    if (sharegpt) {
      if (role == "human" || role == "user") {
        role = "user";
      } else if (role == "gpt" || role == "assistant") {
        role = "assistant";
      } else if (role != "system") {
        role_field.fail("role '" + role + "' is unknown (known: system, human, user, gpt, assistant)");
      }
    } else if (role != "system" && role != "user" && role != "assistant") {
      role_field.fail("role '" + role + "' is unknown (known: system, user, assistant)");
    }
    // The expected role at this position: system only first, then user/assistant alternating.
    const bool first = turns.empty();
    const bool after_system = !first && turns.size() == 1 && turns[0].role == "system";
    std::string expected;
    if (role == "system") {
      if (!first) role_field.fail("a system turn may only come first");
    } else if (first || after_system) {
      expected = "user";
    } else {
      expected = turns.back().role == "user" ? "assistant" : "user";
    }
    if (!expected.empty() && role != expected) {
      role_field.fail(std::string(expected == "user" ? "expected a " : "expected an ") + expected +
                      " turn here (after an optional system turn, " +
                      "turns alternate user, assistant, user, ...), got " + role);
    }
    turns.push_back(JsonlTurn{std::move(role), item.at(content_key).string()});
  }
  const bool has_assistant = std::any_of(turns.begin(), turns.end(),
                                         [](const JsonlTurn& t) { return t.role == "assistant"; });
  if (!has_assistant) list.fail("has no assistant turn (nothing to train on)");
  return turns;
}

std::vector<int64_t> parse_ids(const Field& list, bool labels) {
  const json::array_t& items = list.array();
  std::vector<int64_t> out;
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const json& v = items[i];
    if (!v.is_number_integer()) list.at(i).fail(std::string("expected an integer, got ") + kind(v));
    // number_unsigned also holds values past int64's range; none of them is a token id.
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId)) {
      list.at(i).fail("id " + v.dump() + " is outside [0, " + std::to_string(kMaxTokenId) + "]");
    }
    const int64_t id = v.get<int64_t>();
    const bool ignored = labels && id == kJsonlIgnoreLabel;
    if (!ignored && (id < 0 || id > kMaxTokenId)) {
      list.at(i).fail("id " + std::to_string(id) + " is outside [0, " + std::to_string(kMaxTokenId) +
                      "]" + (labels ? " and is not -100" : ""));
    }
    out.push_back(id);
  }
  return out;
}

JsonlRecord parse_tokens(const json& object, const std::string& where) {
  JsonlRecord r;
  r.form = JsonlForm::kTokens;
  r.input_ids = parse_ids(member(object, "input_ids", where), false);
  if (r.input_ids.empty()) member(object, "input_ids", where).fail("is empty");
  if (object.contains("labels")) {
    const Field labels = member(object, "labels", where);
    r.labels = parse_ids(labels, true);
    if (r.labels.size() != r.input_ids.size()) {
      labels.fail("has " + std::to_string(r.labels.size()) + " entries but input_ids has " +
                  std::to_string(r.input_ids.size()));
    }
    for (std::size_t i = 0; i < r.labels.size(); ++i) {
      if (r.labels[i] != kJsonlIgnoreLabel && r.labels[i] != r.input_ids[i]) {
        labels.at(i).fail(std::to_string(r.labels[i]) + " is neither input_ids[" +
                          std::to_string(i) + "] (" + std::to_string(r.input_ids[i]) +
                          ") nor -100 (labels name the token at their own position; the loss "
                          "shifts them)");
      }
    }
  }
  return r;
}

}  // namespace

const char* jsonl_form_name(JsonlForm form) {
  switch (form) {
    case JsonlForm::kText: return "text";
    case JsonlForm::kPromptResponse: return "prompt/response";
    case JsonlForm::kAlpaca: return "alpaca";
    case JsonlForm::kMessages: return "messages";
    case JsonlForm::kShareGpt: return "sharegpt";
    case JsonlForm::kTokens: return "input_ids";
  }
  return "?";
}

bool is_blank_line(std::string_view line) {
  return line.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

JsonlRecord parse_jsonl_line(std::string_view line, const std::string& where) {
  if (line.size() > kMaxJsonlLineBytes) {
    throw UserError(where + ": line of " + std::to_string(line.size()) + " bytes is longer than " +
                    "the " + std::to_string(kMaxJsonlLineBytes) + " allowed");
  }
  const json object = parse_strict(line, where);
  if (!object.is_object()) {
    throw UserError(where + ": expected a JSON object, got " + std::string(kind(object)));
  }
  const bool has_text = object.contains("text");
  const bool has_prompt = object.contains("prompt") || object.contains("response");
  const bool has_alpaca = object.contains("instruction") || object.contains("output");
  const bool has_messages = object.contains("messages");
  const bool has_sharegpt = object.contains("conversations");
  const bool has_tokens = object.contains("input_ids") || object.contains("labels");
  const int forms = int(has_text) + int(has_prompt) + int(has_alpaca) + int(has_messages) +
                    int(has_sharegpt) + int(has_tokens);
  if (forms == 0) {
    throw UserError(where + ": object has none of the keys text, prompt/response, "
                            "instruction/output, messages, conversations, input_ids");
  }
  // A line carrying two forms is ambiguous about what to train on; refuse rather than guess.
  if (forms > 1) {
    throw UserError(where + ": object mixes the forms text, prompt/response, instruction/output, "
                            "messages, conversations, input_ids; use one");
  }
  JsonlRecord r;
  if (has_text) {
    r.form = JsonlForm::kText;
    r.text = member(object, "text", where).string();
  } else if (has_prompt) {
    if (!object.contains("prompt")) throw UserError(where + ": object has \"response\" but no \"prompt\"");
    if (!object.contains("response")) throw UserError(where + ": object has \"prompt\" but no \"response\"");
    r.form = JsonlForm::kPromptResponse;
    r.prompt = member(object, "prompt", where).string();
    r.response = member(object, "response", where).string();
  } else if (has_alpaca) {
    if (!object.contains("instruction")) {
      throw UserError(where + ": object has \"output\" but no \"instruction\"");
    }
    if (!object.contains("output")) {
      throw UserError(where + ": object has \"instruction\" but no \"output\"");
    }
    r.form = JsonlForm::kAlpaca;
    r.prompt = member(object, "instruction", where).string();
    if (object.contains("input")) r.input = member(object, "input", where).string();
    r.response = member(object, "output", where).string();
  } else if (has_messages) {
    r.form = JsonlForm::kMessages;
    r.turns = parse_turns(member(object, "messages", where), "role", "content", false, {});
  } else if (has_sharegpt) {
    r.form = JsonlForm::kShareGpt;
    std::vector<JsonlTurn> start;
    if (object.contains("system")) {
      const std::string& system = member(object, "system", where).string();
      if (!system.empty()) start.push_back(JsonlTurn{"system", system});
    }
    r.turns = parse_turns(member(object, "conversations", where), "from", "value", true,
                          std::move(start));
  } else {
    if (!object.contains("input_ids")) throw UserError(where + ": object has \"labels\" but no \"input_ids\"");
    r = parse_tokens(object, where);
  }
  return r;
}

}  // namespace shardtune::io
