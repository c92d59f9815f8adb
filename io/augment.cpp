#include "io/augment.h"

#include <algorithm>
#include <cctype>

#include "base/errors.h"
#include "base/hash.h"
#include "io/augment_clause.h"

namespace shardtune::io {

namespace {

// splitmix64: a portable generator whose sequence is fixed by its seed.
double uniform(uint64_t& state) {
  return static_cast<double>(base::splitmix64_next(state) >> 11) * 0x1.0p-53;
}
uint64_t below(uint64_t& state, uint64_t n) { return base::splitmix64_next(state) % n; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_word_char(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

}  // namespace

AugmentOptions parse_augment(const std::string& list, double rate, uint64_t seed, int64_t copies) {
  AugmentOptions o;
  o.rate = rate;
  o.seed = seed;
  o.copies = copies;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item == "synonym") {
      o.synonym = true;
    } else if (item == "reorder") {
      o.reorder = true;
    } else if (item == "clause") {
      o.clause = true;
    } else if (!item.empty()) {
      throw UserError("[data] augment: '" + item + "' is unknown (known: synonym, reorder, clause)");
    }
    start = comma + 1;
  }
  require(rate >= 0.0 && rate <= 1.0, "[data] augment_rate=" + std::to_string(rate) +
                                          " must be in [0, 1]");
  require(copies >= 1, "[data] augment_copies=" + std::to_string(copies) + " must be >= 1");
  return o;
}

Augmenter::Augmenter(const std::vector<Synset>& synsets, AugmentOptions options)
    : options_(options) {
  if (!options_.synonym) return;
  for (const auto& s : synsets) {
    for (const auto& w : s.words) {
      if (w.find(' ') != std::string::npos || w.find('-') != std::string::npos) continue;
      auto& list = synonyms_[lower(w)];
      for (const auto& other : s.words) {
        if (other.find(' ') != std::string::npos || lower(other) == lower(w)) continue;
        if (std::find(list.begin(), list.end(), other) == list.end()) list.push_back(other);
      }
    }
  }
  for (auto it = synonyms_.begin(); it != synonyms_.end();) {
    it = it->second.empty() ? synonyms_.erase(it) : std::next(it);
  }
}

const std::vector<std::string>* Augmenter::synonyms(const std::string& word) const {
  auto it = synonyms_.find(lower(word));
  return it == synonyms_.end() ? nullptr : &it->second;
}

std::string Augmenter::replace_synonyms(const std::string& text, uint64_t& state) const {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (!is_word_char(text[i])) {
      out += text[i++];
      continue;
    }
    size_t j = i;
    while (j < text.size() && is_word_char(text[j])) ++j;
    std::string word = text.substr(i, j - i);
    const auto* list = synonyms(word);
    // One draw per word whether or not it has synonyms keeps the stream aligned with the text.
    const double u = uniform(state);
    if (list && u < options_.rate) {
      std::string pick = (*list)[below(state, list->size())];
      if (std::isupper(static_cast<unsigned char>(word[0])) && !pick.empty()) {
        pick[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(pick[0])));
      }
      word = pick;
    }
    out += word;
    i = j;
  }
  return out;
}

std::string Augmenter::reorder_sentences(const std::string& text, uint64_t& state) const {
  // Sentences end at '.', '!', '?' or ';' followed by a space (the terminator stays with its
  // sentence; the last one keeps whatever ends the text).
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    const char c = text[i];
    if ((c == '.' || c == '!' || c == '?' || c == ';') && text[i + 1] == ' ') {
      parts.push_back(text.substr(start, i + 1 - start));
      start = i + 2;
    }
  }
  parts.push_back(text.substr(start));
  const double u = uniform(state);
  if (parts.size() < 2 || u >= options_.rate) return text;
  // Terminators belong to positions, not sentences: "a; b." reordered reads "b; a.".
  std::vector<char> ends;
  for (auto& p : parts) {
    const char last = p.empty() ? '\0' : p.back();
    const bool term = last == '.' || last == '!' || last == '?' || last == ';';
    ends.push_back(term ? last : '\0');
    if (term) p.pop_back();
  }
  for (size_t i = parts.size() - 1; i > 0; --i) std::swap(parts[i], parts[below(state, i + 1)]);
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += ' ';
    out += parts[i];
    if (ends[i]) out += ends[i];
  }
  return out;
}

std::string Augmenter::augment(const std::string& text, uint64_t stream) const {
  // kShardTuneFnvBasis: the augmented data of a seed depends on it (base/hash.h).
  uint64_t state = options_.seed ^ (stream * 0xD1B54A32D192ED03ULL) ^
                   base::fnv1a64(text, base::kShardTuneFnvBasis);
  std::string out = text;
  // Sentences, then clauses inside them, then words. Without `clause` the generator's sequence
  // is the one earlier versions drew (same seed, same augmented data).
  if (options_.reorder) out = reorder_sentences(out, state);
  if (options_.clause) out = reorder_clauses(out, options_.rate, state);
  if (options_.synonym) out = replace_synonyms(out, state);
  return out;
}

Record Augmenter::augment(const Record& record, uint64_t stream) const {
  Record out = record;
  // Different streams per field so that a prompt equal to its response is not altered alike.
  out.prompt = augment(record.prompt, stream * 3);
  out.response = augment(record.response, stream * 3 + 1);
  for (size_t i = 0; i < out.messages.size(); ++i) {
    out.messages[i].content = augment(record.messages[i].content, (stream * 3 + 2) * 1024 + i);
  }
  return out;
}

std::vector<Record> Augmenter::expand(const std::vector<Record>& records) const {
  std::vector<Record> out = records;
  for (size_t r = 0; r < records.size(); ++r) {
    for (int64_t c = 0; c < options_.copies; ++c) {
      auto a = augment(records[r], static_cast<uint64_t>(r) * options_.copies + c);
      bool same = a.prompt == records[r].prompt && a.response == records[r].response;
      for (size_t i = 0; same && i < a.messages.size(); ++i) {
        same = a.messages[i].content == records[r].messages[i].content;
      }
      if (!same) out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace shardtune::io
