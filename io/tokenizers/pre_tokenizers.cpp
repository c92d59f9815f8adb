// Pre-tokenizers, with Hugging Face's split semantics (tokenizers/src/tokenizer/normalizer.rs,
// NormalizedString::split): a pattern's matches and the gaps between them form a list of
// (range, is_match) that the behaviour then merges or drops.
#include "io/tokenizers/pre_tokenizers.h"

#include <algorithm>

#include "io/tokenizers/byte_level.h"
#include "io/tokenizers/regex.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const JsonField& f) {
  const std::string& s = f.string();
  if (s == "Removed") return Behavior::kRemoved;
  if (s == "Isolated") return Behavior::kIsolated;
  if (s == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::kMergedWithNext;
  if (s == "Contiguous") return Behavior::kContiguous;
  f.fail("\"" + s + "\" is not a split behaviour (Removed, Isolated, MergedWithPrevious, "
         "MergedWithNext, Contiguous)");
}

struct Span {
  std::size_t begin, end;
  bool is_match;
};

// Turns the matches of a pattern in `piece` into pieces, as NormalizedString::split does.
void split_piece(const Piece& piece, const std::vector<Regex::Match>& matches, Behavior behavior,
                 bool invert, std::vector<Piece>& out) {
  const std::size_t n = piece.text.size();
  thread_local std::vector<Span> spans, merged;
  spans.clear();
  std::size_t prev = 0;
  for (const auto& m : matches) {
    if (m.begin > prev) spans.push_back({prev, m.begin, invert});
    spans.push_back({m.begin, m.end, !invert});
    prev = m.end;
  }
  if (prev < n) spans.push_back({prev, n, invert});

  merged.clear();
  switch (behavior) {
    case Behavior::kIsolated:
      merged = spans;
      break;
    case Behavior::kRemoved:
      for (const auto& s : spans) {
        if (!s.is_match) merged.push_back(s);
      }
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (std::size_t k = spans.size(); k-- > 0;) {
        const auto& s = spans[k];
        if (s.is_match && !previous_match && !merged.empty()) {
          merged.back().begin = s.begin;
        } else {
          merged.push_back(s);
        }
        previous_match = s.is_match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      bool first = true;
      for (const auto& s : spans) {
        if (!first && s.is_match == previous_match) {
          merged.back().end = s.end;
        } else {
          merged.push_back(s);
        }
        previous_match = s.is_match;
        first = false;
      }
      break;
    }
  }
  for (const auto& s : merged) {
    if (s.end > s.begin) {
      out.push_back({piece.text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
    }
  }
}

void find_literal(std::string_view text, const std::string& needle, std::vector<Regex::Match>& out) {
  if (needle.empty()) return;
  std::size_t pos = 0;
  while ((pos = text.find(needle, pos)) != std::string_view::npos) {
    out.push_back({pos, pos + needle.size()});
    pos += needle.size();
  }
}

class Split final : public PreTokenizer {
 public:
  Split(const JsonField& f) : behavior_(parse_behavior(f.at("behavior"))) {
    invert_ = f.bool_or("invert", false);
    const JsonField pattern = f.at("pattern");
    if (pattern.has("String")) {
      literal_ = pattern.at("String").string();
    } else if (pattern.has("Regex")) {
      const JsonField re = pattern.at("Regex");
      regex_ = std::make_unique<Regex>(re.string(), re.where);
    } else {
      pattern.fail("must have \"String\" or \"Regex\"");
    }
  }
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out, PieceStore&) const override {
    thread_local std::vector<Regex::Match> matches;
    for (const auto& piece : in) {
      matches.clear();
      if (regex_) {
        regex_->find_all(piece.text, matches);
      } else {
        find_literal(piece.text, literal_, matches);
      }
      split_piece(piece, matches, behavior_, invert_, out);
    }
  }

 private:
  Behavior behavior_;
  bool invert_ = false;
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2SplitPattern, "GPT-2 ByteLevel pattern");
  }
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out, PieceStore& store) const override {
    thread_local std::vector<Regex::Match> matches;
    for (Piece piece : in) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text.front() != ' ')) {
        piece.text = store.keep(" " + std::string(piece.text));
      }
      if (!regex_) {
        if (!piece.text.empty()) out.push_back(piece);
        continue;
      }
      matches.clear();
      regex_->find_all(piece.text, matches);
      split_piece(piece, matches, Behavior::kIsolated, false, out);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  explicit Metaspace(const JsonField& f) {
    replacement_ = f.string_or("replacement", "\xE2\x96\x81");
    require_utf8(replacement_, f.where + ".replacement");
    std::size_t i = 0;
    f.expect(!replacement_.empty() && (next_code_point(replacement_, i), i == replacement_.size()),
             "replacement must be one character");
    split_ = f.bool_or("split", true);
    if (f.present("prepend_scheme")) {
      const JsonField s = f.at("prepend_scheme");
      if (s.string() == "always") prepend_ = Prepend::kAlways;
      else if (s.string() == "first") prepend_ = Prepend::kFirst;
      else if (s.string() == "never") prepend_ = Prepend::kNever;
      else s.fail("\"" + s.string() + "\" is not a prepend scheme (always, first, never)");
    } else {
      prepend_ = f.bool_or("add_prefix_space", true) ? Prepend::kAlways : Prepend::kNever;
    }
  }
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out, PieceStore& store) const override {
    std::vector<Regex::Match> matches;
    for (const Piece& piece : in) {
      std::string s;
      s.reserve(piece.text.size() + replacement_.size());
      const bool prepend = (prepend_ == Prepend::kAlways ||
                            (prepend_ == Prepend::kFirst && piece.at_start));
      for (char c : piece.text) {
        if (c == ' ') s += replacement_;
        else s.push_back(c);
      }
      if (prepend && s.compare(0, replacement_.size(), replacement_) != 0) s.insert(0, replacement_);
      const Piece rewritten{store.keep(std::move(s)), piece.at_start};
      if (!split_) {
        if (!rewritten.text.empty()) out.push_back(rewritten);
        continue;
      }
      matches.clear();
      find_literal(rewritten.text, replacement_, matches);
      split_piece(rewritten, matches, Behavior::kMergedWithNext, false, out);
    }
  }

 private:
  std::string replacement_;
  bool split_ = true;
  Prepend prepend_ = Prepend::kAlways;
};

class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out, PieceStore&) const override {
    std::vector<Regex::Match> matches;
    for (const Piece& piece : in) {
      matches.clear();
      for (std::size_t i = 0; i < piece.text.size(); ++i) {
        const char c = piece.text[i];
        if (c >= '0' && c <= '9') matches.push_back({i, i + 1});
      }
      split_piece(piece, matches, individual_ ? Behavior::kIsolated : Behavior::kContiguous, false, out);
    }
  }

 private:
  bool individual_;
};

void parse_into(const JsonField& f, PreTokenizerChain& chain) {
  const std::string type = f.at("type").string();
  if (chain.byte_level) {
    f.fail("follows a ByteLevel pre-tokenizer; ByteLevel must be the last step");
  }
  if (type == "Sequence") {
    const JsonField list = f.at("pretokenizers");
    for (std::size_t i = 0; i < list.array().size(); ++i) parse_into(list.at(i), chain);
  } else if (type == "Split") {
    chain.steps.push_back(std::make_unique<Split>(f));
  } else if (type == "ByteLevel") {
    chain.steps.push_back(make_byte_level_pre_tokenizer(f.bool_or("add_prefix_space", true),
                                                        f.bool_or("use_regex", true)));
    chain.byte_level = true;
  } else if (type == "Metaspace") {
    chain.steps.push_back(std::make_unique<Metaspace>(f));
  } else if (type == "Digits") {
    chain.steps.push_back(std::make_unique<Digits>(f.bool_or("individual_digits", false)));
  } else {
    f.at("type").fail("\"" + type + "\" is not a supported pre-tokenizer (supported: Split, "
                      "ByteLevel, Metaspace, Digits, Sequence)");
  }
}

}  // namespace

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevel>(add_prefix_space, use_regex);
}

PreTokenizerChain parse_pre_tokenizer(const JsonField& field) {
  PreTokenizerChain chain;
  if (!field.value.is_null()) parse_into(field, chain);
  return chain;
}

void PreTokenizerChain::run(std::string_view text, bool at_start, std::vector<Piece>& out,
                            PieceStore& store) const {
  out.clear();
  if (!text.empty()) out.push_back({text, at_start});
  thread_local std::vector<Piece> next;
  for (const auto& step : steps) {
    next.clear();
    step->apply(out, next, store);
    out.swap(next);
  }
}

}  // namespace shardtune::io::tokenizers
