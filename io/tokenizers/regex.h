// A compiled Unicode regular expression (PCRE2 with UTF and Unicode properties, JIT-compiled where
// the platform allows), as tokenizer.json's Split pre-tokenizer and GPT-2's ByteLevel need:
// `\p{L}`, `\p{N}`, `(?i:...)`, lookahead `\s+(?!\S)`.
//
// Patterns come from untrusted files: compile errors are UserErrors naming the pattern, and every
// match runs under a match limit so a pathological pattern fails instead of hanging.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shardtune::io::tokenizers {

class Regex {
 public:
  // `where` names the pattern's origin in errors ("tokenizer.json: pre_tokenizer.pattern.Regex").
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  struct Match {
    std::size_t begin, end;
  };
  // Appends the non-overlapping matches in `text` (valid UTF-8), left to right, as byte ranges.
  // An empty match advances by one character so the scan always ends.
  void find_all(std::string_view text, std::vector<Match>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_, where_;
};

}  // namespace shardtune::io::tokenizers
