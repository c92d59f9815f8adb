// String helpers every layer uses (messages, option lists, parameter names).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardtune::base {

// "a, b, c" (items in order, `separator` between them).
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");
std::string join(const std::vector<int>& items, std::string_view separator = ", ");

// A tensor shape for messages: "[2, 3]" ("[]" for a scalar).
std::string shape_string(const std::vector<int64_t>& dims);

bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);

// `text` on one printable line for a message: bytes outside ASCII 0x20-0x7e become '?' (a name
// from an untrusted file cannot forge a second error line), cut at `max` bytes with "...".
std::string printable(std::string_view text, size_t max = 120);

// `text` without leading and trailing blanks (space, tab, CR, LF).
std::string_view trim(std::string_view text);

// Comma-separated list, blanks around items trimmed, empty items dropped: " a, b,,c " -> a b c.
std::vector<std::string> split_list(std::string_view text);

// true | 1 | yes | on -> true; false | 0 | no | off -> false; anything else: false with ok=false.
bool parse_bool(std::string_view text, bool& ok);

// The shortest decimal form that reads back as exactly `value` ("0.003", "1e-05", "10000"):
// what %g prints when 6 digits suffice, more digits only when they are needed for the round trip.
std::string format_double(double value);

}  // namespace shardtune::base
