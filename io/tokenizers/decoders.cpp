// Decoders, following Hugging Face's decode_chain semantics per type.
#include "io/tokenizers/decoders.h"

#include "io/tokenizers/byte_level.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos).append(to);
    pos = hit + from.size();
  }
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

// Joins all tokens into one byte string, mapping GPT-2 characters back to bytes. A token with a
// character outside the table (an added token such as "<|im_start|>" is all inside it, but others
// need not be) contributes its own UTF-8 bytes. Invalid UTF-8 becomes U+FFFD.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    const auto& table = byte_level_table();
    std::string bytes;
    std::string mapped;
    for (const auto& t : tokens) {
      mapped.clear();
      bool ok = true;
      std::size_t i = 0;
      while (i < t.size()) {
        const char32_t cp = next_code_point(t, i);
        const int b = cp < ByteLevelTable::kCharLimit ? table.char_to_byte[cp] : -1;
        if (b < 0) {
          ok = false;
          break;
        }
        mapped.push_back(static_cast<char>(b));
      }
      bytes += ok ? mapped : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], replacement_, " ");
      if (i == 0 && strip_first_ && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) replace_all(t, from_, to_);
  }

 private:
  std::string from_, to_;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Runs of "<0xXX>" tokens become the bytes they name; a run that is not valid UTF-8 becomes one
// U+FFFD per byte, as Hugging Face's ByteFallback does.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string run;
    std::size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (find_invalid_utf8(run) == std::string::npos) {
        out.push_back(run);
      } else {
        for (std::size_t k = 0; k < run_len; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_len = 0;
    };
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_digit(t[3]) >= 0 &&
          hex_digit(t[4]) >= 0) {
        run.push_back(static_cast<char>(hex_digit(t[3]) * 16 + hex_digit(t[4])));
        ++run_len;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, std::size_t start, std::size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::size_t b = 0, e = t.size();
      for (std::size_t k = 0; k < start_ && b + content_.size() <= e &&
                              t.compare(b, content_.size(), content_) == 0;
           ++k) {
        b += content_.size();
      }
      for (std::size_t k = 0; k < stop_ && e >= b + content_.size() &&
                              t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++k) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  std::size_t start_, stop_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

std::unique_ptr<Decoder> parse_decoder(const JsonField& f) {
  if (f.value.is_null()) return nullptr;
  const std::string type = f.at("type").string();
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "Metaspace") {
    const std::string replacement = f.string_or("replacement", "\xE2\x96\x81");
    require_utf8(replacement, f.where + ".replacement");
    bool strip_first;
    if (f.present("prepend_scheme")) {
      strip_first = f.at("prepend_scheme").string() != "never";
    } else {
      strip_first = f.bool_or("add_prefix_space", true);
    }
    return std::make_unique<MetaspaceDecoder>(replacement, strip_first);
  }
  if (type == "Replace") {
    const JsonField pattern = f.at("pattern");
    pattern.expect(pattern.has("String"), "must have \"String\" (regex patterns are not supported "
                                          "in decoders)");
    return std::make_unique<ReplaceDecoder>(pattern.at("String").string(), f.at("content").string());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const std::string& content = f.at("content").string();
    f.at("content").expect(!content.empty(), "must not be empty");
    return std::make_unique<StripDecoder>(content, static_cast<std::size_t>(f.at("start").integer(0, 1 << 20)),
                                          static_cast<std::size_t>(f.at("stop").integer(0, 1 << 20)));
  }
  if (type == "Sequence") {
    const JsonField list = f.at("decoders");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (std::size_t i = 0; i < list.array().size(); ++i) {
      auto d = parse_decoder(list.at(i));
      if (d) steps.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  f.at("type").fail("\"" + type + "\" is not a supported decoder (supported: ByteLevel, Metaspace, "
                    "Replace, ByteFallback, Fuse, Strip, Sequence)");
}

}  // namespace shardtune::io::tokenizers
