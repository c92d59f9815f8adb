// tokenizer.json / GPT-2 BPE: HF's encode pipeline (added tokens, normalizer, pre-tokenizer, BPE)
// and decoding. Loading is in hf_tokenizer_load.cpp.
#include "io/tokenizers/hf_tokenizer.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "io/tokenizers/bpe.h"
#include "io/tokenizers/decoders.h"
#include "io/tokenizers/json_util.h"
#include "io/tokenizers/normalizers.h"
#include "io/tokenizers/pre_tokenizers.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

namespace {


// Rust regex's Unicode \w, which Hugging Face's single_word test uses.
bool is_word_char(char32_t c) {
  const auto u = static_cast<UChar32>(c);
  return u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL) ||
         (U_GET_GC_MASK(u) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

bool is_space(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

// Start of the last character of a non-empty valid UTF-8 string.
std::size_t last_char_start(std::string_view s) {
  std::size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

char32_t last_char(std::string_view s) {
  std::size_t i = last_char_start(s);
  return next_code_point(s, i);
}

// Reads the vocabulary object {token: id}; ids in [0, kMaxVocab) and unique.
}  // namespace

std::pair<int32_t, std::size_t> HfBpeTokenizer::Trie::longest(std::string_view text,
                                                              std::size_t pos) const {
  std::pair<int32_t, std::size_t> best{-1, 0};
  int32_t node = 0;
  for (std::size_t k = pos; k < text.size(); ++k) {
    const auto c = static_cast<unsigned char>(text[k]);
    int32_t child = -1;
    for (const auto& [byte, index] : nodes[node].children) {
      if (byte == c) {
        child = index;
        break;
      }
    }
    if (child < 0) break;
    node = child;
    if (nodes[node].token >= 0) best = {nodes[node].token, k - pos + 1};
  }
  return best;
}

std::string HfBpeTokenizer::identity() const {
  const std::string roles = std::to_string(bos_) + "," + std::to_string(eos_) + "," + std::to_string(pad_);
  return kind_ + "-v1:" + hex64(fnv1a64(roles, content_hash_));
}

std::optional<int64_t> HfBpeTokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (const auto it = added_ids_.find(key); it != added_ids_.end()) return it->second;
  if (const auto it = model_->vocab().find(key); it != model_->vocab().end()) return it->second;
  return std::nullopt;
}

std::string HfBpeTokenizer::id_to_token(int64_t id) const {
  require(id >= 0 && id < vocab_size() && has_token_[static_cast<std::size_t>(id)],
          "id " + std::to_string(id) + " names no token (vocabulary size " +
              std::to_string(vocab_size()) + ")");
  return id_to_token_[static_cast<std::size_t>(id)];
}

std::vector<AddedToken> HfBpeTokenizer::added_tokens() const {
  std::vector<AddedToken> out;
  for (const auto& a : added_) out.push_back({a.id, id_to_token_[a.id], a.special});
  return out;
}

void HfBpeTokenizer::split_added(std::string_view text, bool at_start, const Trie& trie,
                                 bool parse_special, std::vector<Segment>& out) const {
  out.clear();
  if (trie.empty()) {
    if (!text.empty()) out.push_back({false, -1, text, at_start});
    return;
  }
  const std::size_t n = text.size();
  std::size_t gap = 0, pos = 0;
  while (pos < n) {
    if (!trie.first[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const auto [index, len] = trie.longest(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const Added& a = added_[static_cast<std::size_t>(index)];
    std::size_t s = pos, e = pos + len;
    pos = e;  // a skipped match is passed over whole, as aho-corasick's iterator does
    if (a.special && !parse_special) continue;
    if (a.single_word) {
      const bool left_ok = s == 0 || !is_word_char(last_char(text.substr(0, s)));
      std::size_t k = e;
      const bool right_ok = e == n || !is_word_char(next_code_point(text, k));
      if (!left_ok || !right_ok) continue;
    }
    if (a.lstrip) {
      while (s > gap) {
        const std::size_t prev = last_char_start(text.substr(0, s));
        if (prev < gap) break;
        std::size_t k = prev;
        if (!is_space(next_code_point(text, k))) break;
        s = prev;
      }
    }
    if (a.rstrip) {
      while (e < n) {
        std::size_t k = e;
        if (!is_space(next_code_point(text, k))) break;
        e = k;
      }
      pos = e;
    }
    if (gap < s) out.push_back({false, -1, text.substr(gap, s - gap), at_start && gap == 0});
    out.push_back({true, a.id, text.substr(s, e - s), false});
    gap = e;
  }
  if (gap < n) out.push_back({false, -1, text.substr(gap), at_start && gap == 0});
}

void HfBpeTokenizer::encode_text(std::string_view text, bool at_start, bool parse_special,
                                 std::vector<int64_t>& out) const {
  std::string normalized;
  std::string_view view = text;
  if (normalizer_) {
    normalized = normalizer_->normalize(text);
    view = normalized;
  }
  thread_local std::vector<Segment> segments;
  thread_local std::vector<Piece> pieces;
  thread_local PieceStore store;
  // Second pass: added tokens marked "normalized" match the normalized text.
  split_added(view, at_start, normalized_trie_, parse_special, segments);
  for (const auto& seg : segments) {
    if (seg.is_token) {
      out.push_back(seg.id);
      continue;
    }
    store.clear();
    pre_tokenizer_->run(seg.text, seg.at_start, pieces, store);
    for (const auto& p : pieces) model_->encode_piece(p.text, out);
  }
}

std::vector<int64_t> HfBpeTokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  require_utf8(text, "the text to encode");
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  std::vector<Segment> segments;
  split_added(text, true, raw_trie_, options.parse_special, segments);
  for (const auto& seg : segments) {
    if (seg.is_token) {
      out.push_back(seg.id);
    } else {
      encode_text(seg.text, seg.at_start, options.parse_special, out);
    }
  }
  return out;
}

std::string HfBpeTokenizer::decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size() || !has_token_[static_cast<std::size_t>(id)]) {
      throw UserError("cannot decode id " + std::to_string(id) + ": it names no token (vocabulary size " +
                      std::to_string(vocab_size()) + ")");
    }
    if (options.skip_special && is_special_[static_cast<std::size_t>(id)]) continue;
    tokens.push_back(id_to_token_[static_cast<std::size_t>(id)]);
  }
  if (decoder_) {
    decoder_->decode_chain(tokens);
    std::string text;
    for (const auto& t : tokens) text += t;
    return text;
  }
  // Without a decoder Hugging Face joins tokens with spaces.
  std::string text;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i) text.push_back(' ');
    text += tokens[i];
  }
  return text;
}

}  // namespace shardtune::io::tokenizers