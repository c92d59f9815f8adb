// SentencePiece through libsentencepiece, with ShardTune's UTF-8 checks, id checks and roles.
#include "io/tokenizers/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>

#include "io/tokenizers/text_util.h"
#include "parallel/errors.h"

namespace shardtune::io::tokenizers {

SentencePieceTokenizer::SentencePieceTokenizer()
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const std::string& path) {
  return parse(read_file_capped(path, kMaxSentencePieceBytes), path);
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::parse(std::string_view bytes,
                                                                      const std::string& source) {
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  t->source_ = source;
  const auto status = t->sp_->LoadFromSerializedProto(bytes);
  require(status.ok(), source + ": not a SentencePiece model: " + status.ToString());
  const int n = t->sp_->GetPieceSize();
  require(n > 0, source + ": the SentencePiece model has no pieces");
  t->content_hash_ = fnv1a64(bytes);
  t->bos_ = t->sp_->bos_id();
  t->eos_ = t->sp_->eos_id();
  t->pad_ = t->sp_->pad_id() >= 0 ? t->sp_->pad_id() : t->eos_;
  t->unk_ = t->sp_->unk_id();
  for (int id = 0; id < n; ++id) {
    if (t->sp_->IsControl(id) || t->sp_->IsUnknown(id)) {
      const std::string piece = t->sp_->IdToPiece(id);
      if (!piece.empty()) t->special_pieces_.emplace_back(piece, id);
    }
  }
  std::stable_sort(t->special_pieces_.begin(), t->special_pieces_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return t;
}

void SentencePieceTokenizer::set_roles(const std::string& bos, const std::string& eos,
                                       const std::string& pad, const std::string& where) {
  auto resolve = [&](const std::string& token, const char* role, int64_t keep) -> int64_t {
    if (token.empty()) return keep;
    const auto id = token_to_id(token);
    require(id.has_value(), where + ": the " + std::string(role) + " token \"" + token +
                                "\" is not a piece of " + source_);
    return *id;
  };
  bos_ = resolve(bos, "BOS", bos_);
  eos_ = resolve(eos, "EOS", eos_);
  pad_ = resolve(pad, "pad", sp_->pad_id() >= 0 ? sp_->pad_id() : eos_);
}

int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::string SentencePieceTokenizer::identity() const {
  const std::string roles = std::to_string(bos_) + "," + std::to_string(eos_) + "," + std::to_string(pad_);
  return "sentencepiece-v1:" + hex64(fnv1a64(roles, content_hash_));
}

std::optional<int64_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = sp_->PieceToId(token);
  if (id < 0 || id >= sp_->GetPieceSize() || sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  require(id >= 0 && id < vocab_size(), "id " + std::to_string(id) + " names no piece of " + source_ +
                                            " (vocabulary size " + std::to_string(vocab_size()) + ")");
  return sp_->IdToPiece(static_cast<int>(id));
}

std::vector<AddedToken> SentencePieceTokenizer::added_tokens() const {
  std::vector<AddedToken> out;
  for (int id = 0; id < sp_->GetPieceSize(); ++id) {
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) out.push_back({id, sp_->IdToPiece(id), true});
  }
  return out;
}

void SentencePieceTokenizer::encode_plain(std::string_view text, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  require(status.ok(), source_ + ": SentencePiece could not encode the text: " + status.ToString());
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    const EncodeOptions& options) const {
  require_utf8(text, "the text to encode");
  std::vector<int64_t> out;
  if (!options.parse_special || special_pieces_.empty()) {
    encode_plain(text, out);
    return out;
  }
  std::size_t gap = 0, pos = 0;
  while (pos < text.size()) {
    const std::pair<std::string, int64_t>* hit = nullptr;
    for (const auto& sp : special_pieces_) {
      if (text.compare(pos, sp.first.size(), sp.first) == 0) {
        hit = &sp;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    encode_plain(text.substr(gap, pos - gap), out);
    out.push_back(hit->second);
    pos += hit->first.size();
    gap = pos;
  }
  encode_plain(text.substr(gap), out);
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids,
                                           const DecodeOptions& options) const {
  const int64_t n = vocab_size();
  std::string text;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::string part;
    const auto status = sp_->Decode(run, &part);
    require(status.ok(), source_ + ": SentencePiece could not decode: " + status.ToString());
    text += part;
    run.clear();
  };
  for (int64_t id : ids) {
    require(id >= 0 && id < n, "cannot decode id " + std::to_string(id) +
                                   ": it names no piece (vocabulary size " + std::to_string(n) + ")");
    const int i = static_cast<int>(id);
    if (sp_->IsControl(i)) {
      // SentencePiece drops control pieces itself; kept ones are spelled out between runs.
      if (!options.skip_special) {
        flush();
        text += sp_->IdToPiece(i);
      }
      continue;
    }
    run.push_back(i);
  }
  flush();
  return text;
}

}  // namespace shardtune::io::tokenizers
