// Tokenizer discovery and role (BOS/EOS/pad) resolution.
#include "io/tokenizers/loader.h"

#include <filesystem>

#include "io/tokenizers/hf_tokenizer.h"
#include "io/tokenizers/json_util.h"
#include "io/tokenizers/sentencepiece_tokenizer.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {

namespace fs = std::filesystem;

namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string roles_file_in(const fs::path& dir) {
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    if (is_file(dir / name)) return (dir / name).string();
  }
  return "";
}

struct Roles {
  std::string bos, eos, pad;
};

// A role field: "text", {"content": "text", ...} (transformers' AddedToken form) or null.
std::string role_token(const JsonField& root, const char* key) {
  if (!root.present(key)) return "";
  const JsonField f = root.at(key);
  if (f.value.is_object()) return f.at("content").string();
  return f.string();
}

Roles read_roles(const std::string& file) {
  const nlohmann::json j = read_json_file(file, kMaxTokenizerConfigBytes);
  const JsonField root = json_root(j, file);
  root.object();
  Roles r{role_token(root, "bos_token"), role_token(root, "eos_token"), role_token(root, "pad_token")};
  // tokenizer_config.json may leave a role to special_tokens_map.json beside it.
  const fs::path other = fs::path(file).parent_path() / "special_tokens_map.json";
  if (fs::path(file).filename() == "tokenizer_config.json" && is_file(other)) {
    const nlohmann::json m = read_json_file(other.string(), kMaxTokenizerConfigBytes);
    const JsonField mroot = json_root(m, other.string());
    mroot.object();
    if (!root.has("bos_token")) r.bos = role_token(mroot, "bos_token");
    if (!root.has("eos_token")) r.eos = role_token(mroot, "eos_token");
    if (!root.has("pad_token")) r.pad = role_token(mroot, "pad_token");
  }
  return r;
}

}  // namespace

TokenizerFiles find_tokenizer_files(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  require(!path.empty(), "no tokenizer path given");
  require(fs::exists(p, ec), path + ": no such file or folder");
  TokenizerFiles out;
  if (fs::is_directory(p, ec)) {
    out.roles_file = roles_file_in(p);
    if (is_file(p / "tokenizer.json")) {
      out.kind = "hf-bpe";
      out.files = {(p / "tokenizer.json").string()};
    } else if (is_file(p / "vocab.json") && is_file(p / "merges.txt")) {
      out.kind = "gpt2-bpe";
      out.files = {(p / "vocab.json").string(), (p / "merges.txt").string()};
    } else if (is_file(p / "encoder.json") && is_file(p / "vocab.bpe")) {
      out.kind = "gpt2-bpe";
      out.files = {(p / "encoder.json").string(), (p / "vocab.bpe").string()};
    } else if (is_file(p / "tokenizer.model")) {
      out.kind = "sentencepiece";
      out.files = {(p / "tokenizer.model").string()};
    } else {
      throw UserError(path + ": no tokenizer found in this folder (looked for tokenizer.json, "
                      "vocab.json + merges.txt, encoder.json + vocab.bpe, tokenizer.model)");
    }
    return out;
  }
  require(is_file(p), path + ": not a regular file or folder");
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  out.roles_file = roles_file_in(dir);
  const std::string name = p.filename().string();
  auto pair = [&](const char* vocab, const char* merges) {
    const fs::path v = dir / vocab, m = dir / merges;
    require(is_file(v) && is_file(m), path + ": a GPT-2 tokenizer needs " + vocab + " and " + merges +
                                          " side by side, and " + (is_file(v) ? m : v).string() +
                                          " is missing");
    out.kind = "gpt2-bpe";
    out.files = {v.string(), m.string()};
  };
  if (name == "vocab.json" || name == "merges.txt") {
    pair("vocab.json", "merges.txt");
  } else if (name == "encoder.json" || name == "vocab.bpe") {
    pair("encoder.json", "vocab.bpe");
  } else if (p.extension() == ".model") {
    out.kind = "sentencepiece";
    out.files = {path};
  } else if (p.extension() == ".json") {
    out.kind = "hf-bpe";
    out.files = {path};
  } else {
    throw UserError(path + ": not a tokenizer file (expected tokenizer.json, vocab.json + merges.txt, "
                    "encoder.json + vocab.bpe, or a SentencePiece .model)");
  }
  // A tokenizer_config.json given as the file itself is not a roles file for itself.
  if (!out.roles_file.empty() && fs::equivalent(out.roles_file, p, ec)) out.roles_file.clear();
  return out;
}

std::unique_ptr<TextTokenizer> load_tokenizer(const std::string& path) {
  const TokenizerFiles files = find_tokenizer_files(path);
  if (files.kind == "sentencepiece") {
    auto t = SentencePieceTokenizer::from_file(files.files[0]);
    if (!files.roles_file.empty()) {
      const Roles r = read_roles(files.roles_file);
      t->set_roles(r.bos, r.eos, r.pad, files.roles_file);
    }
    return t;
  }
  std::unique_ptr<HfBpeTokenizer> t = files.kind == "hf-bpe"
                                          ? HfBpeTokenizer::from_tokenizer_json(files.files[0])
                                          : HfBpeTokenizer::from_gpt2_files(files.files[0], files.files[1]);
  if (!files.roles_file.empty()) {
    const Roles r = read_roles(files.roles_file);
    // A GPT-2 pair keeps "<|endoftext|>" for roles its config leaves out.
    if (files.kind == "gpt2-bpe") {
      const std::string eot = t->token_to_id("<|endoftext|>") ? "<|endoftext|>" : "";
      t->set_roles(r.bos.empty() ? eot : r.bos, r.eos.empty() ? eot : r.eos, r.pad, files.roles_file);
    } else {
      t->set_roles(r.bos, r.eos, r.pad, files.roles_file);
    }
  }
  return t;
}

}  // namespace shardtune::io::tokenizers
