// Normalizers. The Unicode normal forms and case mapping come from ICU, so results follow the
// Unicode data ICU ships (Hugging Face uses Rust's unicode-normalization crate: the same
// algorithm; only characters assigned in one Unicode version and not the other can differ).
#include "io/tokenizers/normalizers.h"

#include <unicode/bytestream.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <unicode/uchar.h>

#include <vector>

#include "io/tokenizers/regex.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

namespace {

class UnicodeForm final : public Normalizer {
 public:
  UnicodeForm(const std::string& form, const std::string& where) : form_(form) {
    UErrorCode status = U_ZERO_ERROR;
    if (form == "NFC") norm_ = icu::Normalizer2::getNFCInstance(status);
    else if (form == "NFD") norm_ = icu::Normalizer2::getNFDInstance(status);
    else if (form == "NFKC") norm_ = icu::Normalizer2::getNFKCInstance(status);
    else norm_ = icu::Normalizer2::getNFKDInstance(status);
    require(U_SUCCESS(status) && norm_, where + ": ICU has no " + form + " normalizer");
  }
  std::string normalize(std::string_view text) const override {
    // ASCII is invariant under every normal form: skip ICU for it.
    bool ascii = true;
    for (unsigned char c : text) ascii &= c < 0x80;
    if (ascii) return std::string(text);
    UErrorCode status = U_ZERO_ERROR;
    const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
    if (norm_->isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return std::string(text);
    std::string out;
    icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
    status = U_ZERO_ERROR;
    norm_->normalizeUTF8(0, piece, sink, nullptr, status);
    if (U_FAILURE(status)) throw UserError(form_ + " normalization failed: " + u_errorName(status));
    return out;
  }

 private:
  std::string form_;
  const icu::Normalizer2* norm_ = nullptr;
};

class Lowercase final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    std::string out;
    bool ascii = true;
    for (unsigned char c : text) ascii &= c < 0x80;
    if (ascii) {
      out.assign(text);
      for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      return out;
    }
    // Full default case mapping (root locale), as Rust's str::to_lowercase.
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(
        icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
    u.toLower(icu::Locale::getRoot());
    u.toUTF8String(out);
    return out;
  }
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  // Hugging Face prepends only to non-empty text.
  std::string normalize(std::string_view text) const override {
    if (text.empty()) return std::string();
    std::string out;
    out.reserve(prefix_.size() + text.size());
    out.append(prefix_).append(text);
    return out;
  }

 private:
  std::string prefix_;
};

class ReplaceString final : public Normalizer {
 public:
  ReplaceString(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  std::string normalize(std::string_view text) const override {
    if (from_.empty()) return std::string(text);
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (true) {
      const std::size_t hit = text.find(from_, pos);
      if (hit == std::string_view::npos) break;
      out.append(text.substr(pos, hit - pos)).append(to_);
      pos = hit + from_.size();
    }
    out.append(text.substr(pos));
    return out;
  }

 private:
  std::string from_, to_;
};

class ReplaceRegex final : public Normalizer {
 public:
  ReplaceRegex(const std::string& pattern, std::string to, const std::string& where)
      : regex_(pattern, where), to_(std::move(to)) {}
  std::string normalize(std::string_view text) const override {
    std::vector<Regex::Match> matches;
    regex_.find_all(text, matches);
    std::string out;
    std::size_t pos = 0;
    for (const auto& m : matches) {
      out.append(text.substr(pos, m.begin - pos)).append(to_);
      pos = m.end;
    }
    out.append(text.substr(pos));
    return out;
  }

 private:
  Regex regex_;
  std::string to_;
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text) const override {
    // Unicode White_Space, as Rust's char::is_whitespace.
    std::size_t b = 0, e = text.size();
    if (left_) {
      while (b < e) {
        std::size_t i = b;
        if (!u_isUWhiteSpace(static_cast<UChar32>(next_code_point(text, i)))) break;
        b = i;
      }
    }
    if (right_) {
      while (e > b) {
        std::size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        std::size_t i = start;
        if (!u_isUWhiteSpace(static_cast<UChar32>(next_code_point(text, i)))) break;
        e = start;
      }
    }
    return std::string(text.substr(b, e - b));
  }

 private:
  bool left_, right_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string s(text);
    for (const auto& step : steps_) s = step->normalize(s);
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const JsonField& field) {
  if (field.value.is_null()) return nullptr;
  const std::string type = field.at("type").string();
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    return std::make_unique<UnicodeForm>(type, field.where);
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") {
    const std::string& prefix = field.at("prepend").string();
    return std::make_unique<Prepend>(prefix);
  }
  if (type == "Replace") {
    const JsonField pattern = field.at("pattern");
    const std::string& content = field.at("content").string();
    if (pattern.has("String")) return std::make_unique<ReplaceString>(pattern.at("String").string(), content);
    if (pattern.has("Regex")) {
      const JsonField re = pattern.at("Regex");
      return std::make_unique<ReplaceRegex>(re.string(), content, re.where);
    }
    pattern.fail("must have \"String\" or \"Regex\"");
  }
  if (type == "Strip") {
    return std::make_unique<Strip>(field.bool_or("strip_left", true), field.bool_or("strip_right", true));
  }
  if (type == "Sequence") {
    const JsonField list = field.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (std::size_t i = 0; i < list.array().size(); ++i) {
      auto step = parse_normalizer(list.at(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  field.at("type").fail("\"" + type + "\" is not a supported normalizer (supported: NFC, NFD, NFKC, "
                        "NFKD, Lowercase, Prepend, Replace, Strip, Sequence)");
}

}  // namespace shardtune::io::tokenizers
