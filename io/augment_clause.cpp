// Clause reordering: sentence and clause segmentation by punctuation and conjunctions, shuffled
// with the augmentations' portable generator.
#include "io/augment_clause.h"

#include <cctype>

namespace shardtune::io {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_blank(const std::string& s) {
  for (char c : s) {
    if (!is_space(c)) return false;
  }
  return true;
}

// The coordinating conjunction spelled at s[i, ...) as a whole word, or 0.
size_t conjunction_at(const std::string& s, size_t i) {
  static const char* const kWords[] = {"and", "but", "or", "nor", "yet", "so"};
  if (i > 0 && is_alpha(s[i - 1])) return 0;
  for (const char* w : kWords) {
    const size_t n = std::char_traits<char>::length(w);
    if (s.compare(i, n, w) == 0 && (i + n == s.size() || !is_alpha(s[i + n]))) return n;
  }
  return 0;
}

uint64_t below(uint64_t& state, uint64_t n) { return augment_next(state) % n; }

char upper(char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); }
char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string reorder_sentence(const std::string& sentence, double rate, uint64_t& state) {
  const double u = augment_uniform(state);
  ClauseSplit split = split_clauses(sentence);
  const size_t n = split.clauses.size();
  if (n < 2 || u >= rate) return sentence;
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  for (size_t i = n - 1; i > 0; --i) std::swap(order[i], order[below(state, i + 1)]);
  const bool capitalised = std::isupper(static_cast<unsigned char>(split.clauses[0][0])) != 0;
  std::string out;
  for (size_t pos = 0; pos < n; ++pos) {
    std::string clause = split.clauses[order[pos]];
    if (capitalised && order[pos] == 0 && pos != 0) {
      // Leaving the front: "When" -> "when", but not "I" or an acronym ("NASA").
      const bool name_like = clause.size() < 2 || !is_alpha(clause[1]) ||
                             std::isupper(static_cast<unsigned char>(clause[1])) != 0;
      if (!name_like) clause[0] = lower(clause[0]);
    }
    if (capitalised && pos == 0) clause[0] = upper(clause[0]);
    out += clause;
    if (pos + 1 < n) out += split.joints[pos];
  }
  return out;
}

}  // namespace

uint64_t augment_next(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double augment_uniform(uint64_t& state) {
  return static_cast<double>(augment_next(state) >> 11) * 0x1.0p-53;
}

ClauseSplit split_clauses(const std::string& s) {
  ClauseSplit out;
  std::string clause;
  int depth = 0;
  bool quoted = false;
  size_t i = 0;
  // A joint is cut only when both the clause before it and the text after it have something
  // besides whitespace; otherwise its characters stay in the clause.
  auto cut = [&](size_t joint_end) {
    if (is_blank(clause) || is_blank(s.substr(joint_end))) return false;
    out.clauses.push_back(clause);
    out.joints.push_back(s.substr(i, joint_end - i));
    clause.clear();
    i = joint_end;
    return true;
  };
  while (i < s.size()) {
    const char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    if (c == '"') quoted = !quoted;
    const bool top = depth == 0 && !quoted;
    if (top && (c == ',' || c == ';') && i + 1 < s.size() && is_space(s[i + 1])) {
      size_t end = i + 1;
      while (end < s.size() && is_space(s[end])) ++end;
      if (const size_t w = conjunction_at(s, end); w && end + w < s.size() && is_space(s[end + w])) {
        end += w;
        while (end < s.size() && is_space(s[end])) ++end;
      }
      if (cut(end)) continue;
    } else if (top && c == ' ' && i + 1 < s.size()) {
      if (const size_t w = conjunction_at(s, i + 1);
          w && i + 1 + w < s.size() && s[i + 1 + w] == ' ' && !clause.empty() &&
          is_alpha(clause.back())) {
        size_t end = i + 1 + w;
        while (end < s.size() && is_space(s[end])) ++end;
        if (cut(end)) continue;
      }
    }
    clause += c;
    ++i;
  }
  out.clauses.push_back(clause);
  return out;
}

std::string reorder_clauses(const std::string& text, double rate, uint64_t& state) {
  std::string out;
  size_t start = 0;
  size_t i = 0;
  while (i <= text.size()) {
    const bool at_end = i == text.size();
    const bool terminator = !at_end && (text[i] == '.' || text[i] == '!' || text[i] == '?') &&
                            (i + 1 == text.size() || is_space(text[i + 1]));
    if (at_end || terminator) {
      out += reorder_sentence(text.substr(start, i - start), rate, state);
      if (at_end) break;
      // The terminator and the whitespace after it stay where they are.
      size_t next = i + 1;
      while (next < text.size() && is_space(text[next])) ++next;
      out += text.substr(i, next - i);
      start = i = next;
      continue;
    }
    ++i;
  }
  return out;
}

}  // namespace shardtune::io
