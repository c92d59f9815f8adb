// The callback sees each key before nlohmann inserts it, so a repeat is caught where the file has
// it; returning false drops the value and parsing goes on, so `problem` is what turns the drop into
// an error.
#include "base/json.h"

#include <unordered_set>
#include <vector>

#include "base/errors.h"
#include "base/strings.h"

namespace shardtune::base {

using nlohmann::json;

json parse_json_checked(std::string_view text, int max_depth, JsonProblem& problem) {
  problem = {};
  std::vector<std::unordered_set<std::string>> keys;  // one set per open object
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (problem.kind != JsonProblem::kNone) return false;
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        if (depth >= max_depth) {
          problem.kind = JsonProblem::kTooDeep;
          return false;
        }
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          problem = {JsonProblem::kDuplicateKey, parsed.get<std::string>()};
          return false;
        }
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                    /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    // A problem found first (which made the callback drop values) is the one to report.
    if (problem.kind == JsonProblem::kNone) problem = {JsonProblem::kSyntax, e.what()};
  }
  return j;
}

json parse_json_strict(std::string_view text, const std::string& source) {
  JsonProblem problem;
  json j = parse_json_checked(text, kMaxJsonDepth, problem);
  switch (problem.kind) {
    case JsonProblem::kSyntax:
      throw UserError(source + ": not valid JSON: " + printable(problem.detail, 200));
    case JsonProblem::kTooDeep:
      throw UserError(source + ": nesting deeper than " + std::to_string(kMaxJsonDepth) +
                      " levels");
    case JsonProblem::kDuplicateKey:
      throw UserError(source + ": the key \"" + printable(problem.detail) +
                      "\" appears twice in one object");
    case JsonProblem::kNone:
      break;
  }
  return j;
}

}  // namespace shardtune::base
