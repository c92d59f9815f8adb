#include "base/strings.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace shardtune::base {

namespace {
template <typename T>
std::string join_items(const std::vector<T>& items, std::string_view separator) {
  std::ostringstream out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out << separator;
    out << items[i];
  }
  return out.str();
}
}  // namespace

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  return join_items(items, separator);
}

std::string join(const std::vector<int>& items, std::string_view separator) {
  return join_items(items, separator);
}

std::string shape_string(const std::vector<int64_t>& dims) {
  return "[" + join_items(dims, ", ") + "]";
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string_view trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  const size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = trim(text.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::string printable(std::string_view text, size_t max) {
  std::string out;
  for (unsigned char c : text.substr(0, max)) {
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (text.size() > max) out += "...";
  return out;
}

bool parse_bool(std::string_view text, bool& ok) {
  ok = true;
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  ok = false;
  return false;
}

std::string format_double(double value) {
  // ostream's default (%g, 6 digits) is what configurations were always printed with; more
  // digits only where 6 would not read back exactly.
  char text[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

}  // namespace shardtune::base
