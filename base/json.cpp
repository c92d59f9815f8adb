// The callback sees each key before nlohmann inserts it, so a repeat is caught where the file has
// it; returning false drops the value and parsing goes on, so `problem` turns the drop into an
// error.
#include "base/json.h"

#include <unordered_set>
#include <vector>

#include "base/errors.h"
#include "base/strings.h"

namespace shardtune::base {

using nlohmann::json;

json parse_json_strict(std::string_view text, const std::string& source) {
  std::vector<std::unordered_set<std::string>> keys;  // one set per open object
  std::string problem;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (!problem.empty()) return false;
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          problem = "nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels";
          return false;
        }
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          problem = "the key \"" + printable(parsed.get<std::string>()) +
                    "\" appears twice in one object";
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
    if (problem.empty()) throw UserError(source + ": not valid JSON: " + printable(e.what(), 200));
  }
  if (!problem.empty()) throw UserError(source + ": " + problem);
  return j;
}

}  // namespace shardtune::base
