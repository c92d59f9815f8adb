// SentencePiece through libsentencepiece, with ShardTune's UTF-8 checks, id checks and roles.
#include "io/tokenizers/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "io/tokenizers/sentencepiece_shim.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

struct SentencePieceTokenizer::Api {
  decltype(&stsp_load) load;
  decltype(&stsp_free) free;
  decltype(&stsp_piece_size) piece_size;
  decltype(&stsp_special_id) special_id;
  decltype(&stsp_piece_to_id) piece_to_id;
  decltype(&stsp_id_to_piece) id_to_piece;
  decltype(&stsp_piece_type) piece_type;
  decltype(&stsp_encode) encode;
  decltype(&stsp_decode) decode;
};

namespace {

constexpr const char* kLibraryName = "libshardtune_sentencepiece.so";

std::vector<std::string> library_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("SHARDTUNE_SENTENCEPIECE_LIBRARY"); env && *env) out.push_back(env);
#ifdef SHARDTUNE_SENTENCEPIECE_LIBRARY_PATH
  out.push_back(SHARDTUNE_SENTENCEPIECE_LIBRARY_PATH);
#endif
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    out.push_back(dir + "/" + kLibraryName);
    out.push_back(dir + "/../lib/" + kLibraryName);
  }
  return out;
}

// Loads the library once per process; throws UserError naming the places it looked.
const SentencePieceTokenizer::Api& api_or_throw() {
  static std::mutex mutex;
  static const SentencePieceTokenizer::Api* api = nullptr;
  static std::string failure;
  std::lock_guard<std::mutex> lock(mutex);
  if (api) return *api;
  if (!failure.empty()) throw UserError(failure);
  // DEEPBIND: sentencepiece binds to its own bundled protobuf, not to LibTorch's. AddressSanitizer
  // refuses DEEPBIND; sanitizer builds (tests and fuzzing, without LibTorch) do without it.
  int flags = RTLD_NOW | RTLD_LOCAL;
#if defined(__SANITIZE_ADDRESS__)
#elif defined(__has_feature)
#if !__has_feature(address_sanitizer)
  flags |= RTLD_DEEPBIND;
#endif
#else
  flags |= RTLD_DEEPBIND;
#endif
  std::string tried;
  for (const auto& path : library_candidates()) {
    void* handle = ::dlopen(path.c_str(), flags);
    if (!handle) {
      tried += "\n  " + path + ": " + ::dlerror();
      continue;
    }
    auto* a = new SentencePieceTokenizer::Api();
    bool ok = true;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(handle, name));
      ok = ok && fn != nullptr;
    };
    sym(a->load, "stsp_load");
    sym(a->free, "stsp_free");
    sym(a->piece_size, "stsp_piece_size");
    sym(a->special_id, "stsp_special_id");
    sym(a->piece_to_id, "stsp_piece_to_id");
    sym(a->id_to_piece, "stsp_id_to_piece");
    sym(a->piece_type, "stsp_piece_type");
    sym(a->encode, "stsp_encode");
    sym(a->decode, "stsp_decode");
    if (!ok) {
      delete a;
      tried += "\n  " + path + ": not ShardTune's SentencePiece library";
      continue;
    }
    api = a;
    return *api;
  }
  failure = std::string("SentencePiece models need ") + kLibraryName +
            " (built with ShardTune), which could not be loaded:" + tried;
  throw UserError(failure);
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer() = default;

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (model_) api_->free(model_);
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const std::string& path) {
  return parse(read_file_capped(path, kMaxSentencePieceBytes), path);
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::parse(std::string_view bytes,
                                                                      const std::string& source) {
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  t->api_ = &api_or_throw();
  t->source_ = source;
  char err[512] = {0};
  t->model_ = t->api_->load(bytes.data(), bytes.size(), err, sizeof err);
  require(t->model_ != nullptr, source + ": not a SentencePiece model: " + err);
  t->piece_size_ = t->api_->piece_size(t->model_);
  require(t->piece_size_ > 0, source + ": the SentencePiece model has no pieces");
  t->content_hash_ = fnv1a64(bytes);
  t->bos_ = t->api_->special_id(t->model_, 0);
  t->eos_ = t->api_->special_id(t->model_, 1);
  const int pad = t->api_->special_id(t->model_, 2);
  t->pad_ = pad >= 0 ? pad : t->eos_;
  t->unk_ = t->api_->special_id(t->model_, 3);
  t->piece_type_.resize(static_cast<std::size_t>(t->piece_size_));
  for (int id = 0; id < t->piece_size_; ++id) {
    t->piece_type_[static_cast<std::size_t>(id)] = t->api_->piece_type(t->model_, id);
    if (t->piece_type_[static_cast<std::size_t>(id)] != 0) {
      const std::string piece = t->id_to_token(id);
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
  const int model_pad = api_->special_id(model_, 2);
  pad_ = resolve(pad, "pad", model_pad >= 0 ? model_pad : eos_);
}

int64_t SentencePieceTokenizer::vocab_size() const { return piece_size_; }

std::string SentencePieceTokenizer::identity() const {
  const std::string roles = std::to_string(bos_) + "," + std::to_string(eos_) + "," + std::to_string(pad_);
  return "sentencepiece-v1:" + hex64(fnv1a64(roles, content_hash_));
}

std::optional<int64_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = api_->piece_to_id(model_, token.data(), token.size());
  if (id < 0) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  require(id >= 0 && id < vocab_size(), "id " + std::to_string(id) + " names no piece of " + source_ +
                                            " (vocabulary size " + std::to_string(vocab_size()) + ")");
  std::size_t n = 0;
  const char* p = api_->id_to_piece(model_, static_cast<int>(id), &n);
  return std::string(p, n);
}

std::vector<AddedToken> SentencePieceTokenizer::added_tokens() const {
  std::vector<AddedToken> out;
  for (int id = 0; id < piece_size_; ++id) {
    if (piece_type_[static_cast<std::size_t>(id)] != 0) out.push_back({id, id_to_token(id), true});
  }
  return out;
}

void SentencePieceTokenizer::encode_plain(std::string_view text, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  // At most one id per byte plus the dummy-prefix piece; the retry covers anything else.
  std::vector<int> ids(text.size() + 2);
  std::size_t count = 0;
  char err[512] = {0};
  for (int attempt = 0; attempt < 2; ++attempt) {
    require(api_->encode(model_, text.data(), text.size(), ids.data(), ids.size(), &count, err, sizeof err) == 0,
            source_ + ": SentencePiece could not encode the text: " + err);
    if (count <= ids.size()) break;
    ids.resize(count);
  }
  out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count));
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
    std::string part(run.size() * 8 + 16, '\0');
    std::size_t size = 0;
    char err[512] = {0};
    for (int attempt = 0; attempt < 2; ++attempt) {
      require(api_->decode(model_, run.data(), run.size(), part.data(), part.size(), &size, err, sizeof err) == 0,
              source_ + ": SentencePiece could not decode: " + err);
      if (size <= part.size()) break;
      part.resize(size);
    }
    part.resize(size);
    text += part;
    run.clear();
  };
  for (int64_t id : ids) {
    require(id >= 0 && id < n, "cannot decode id " + std::to_string(id) +
                                   ": it names no piece (vocabulary size " + std::to_string(n) + ")");
    const int i = static_cast<int>(id);
    if (piece_type_[static_cast<std::size_t>(i)] & 1) {
      // SentencePiece drops control pieces itself; kept ones are spelled out between runs.
      if (!options.skip_special) {
        flush();
        text += id_to_token(i);
      }
      continue;
    }
    run.push_back(i);
  }
  flush();
  return text;
}

}  // namespace shardtune::io::tokenizers
