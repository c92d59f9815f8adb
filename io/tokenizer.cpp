// Tokenizers: the byte-level tokenizer and the factory that maps a config name to one.
#include "io/tokenizer.h"

#include <filesystem>

#include "base/errors.h"
#include "io/tokenizers/loader.h"

namespace shardtune::io {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  // Through unsigned char: a plain char is signed on x86, and bytes >= 0x80 (every byte of a
  // multibyte UTF-8 sequence) must map to 128..255, not to negative ids.
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  // BOS/EOS/PAD (and anything else out of byte range, e.g. a sampled id from a larger
  // vocabulary) carry no text; dropping them keeps decode total rather than throwing mid-generation.
  for (int64_t id : ids) {
    if (id >= 0 && id < 256) text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
  }
  return text;
}

std::vector<int64_t> NoTokenizer::encode(std::string_view text) const {
  throw UserError("[data] tokenizer = none reads pre-tokenized records ({\"input_ids\": [...]}) "
                  "only, but text was to be encoded; set [data] tokenizer to a tokenizer file or "
                  "model folder");
}

std::string NoTokenizer::decode(const std::vector<int64_t>& ids) const {
  throw UserError("[data] tokenizer = none cannot decode ids to text; set [data] tokenizer");
}

std::unique_ptr<core::Tokenizer> make_tokenizer(const std::string& name, const std::string& field) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  if (name == "none") return std::make_unique<NoTokenizer>();
  require(!name.empty(), field + " is empty (byte, none, or a tokenizer file or model folder)");
  require(std::filesystem::exists(name),
          field + " = " + name + ": no such file or folder (byte, none, or a tokenizer path)");
  std::unique_ptr<tokenizers::TextTokenizer> tokenizer;
  try {
    tokenizer = tokenizers::load_tokenizer(name);
  } catch (const UserError& e) {
    throw UserError(field + ": " + e.what());
  }
  // Batches are padded with pad_id(); the loader falls back to EOS when no pad is named.
  require(tokenizer->pad_id() >= 0,
          field + " = " + name + ": the tokenizer names neither a pad nor an EOS token (add a "
                                 "tokenizer_config.json with eos_token beside it)");
  return tokenizer;
}

std::unique_ptr<core::Tokenizer> make_model_tokenizer(const std::string& name, int64_t model_vocab) {
  auto tokenizer = make_tokenizer(name, "[data] tokenizer");
  require(model_vocab >= tokenizer->vocab_size(),
          "[model] vocab_size=" + std::to_string(model_vocab) +
              " is smaller than the tokenizer's vocabulary (" +
              std::to_string(tokenizer->vocab_size()) + ")");
  return tokenizer;
}

std::string tokenizer_folder(const std::string& name) {
  if (name == "byte" || name == "none" || name.empty()) return "";
  const std::filesystem::path p(name);
  return std::filesystem::is_directory(p) ? p.string() : p.parent_path().string();
}

}  // namespace shardtune::io
