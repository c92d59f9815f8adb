// tokenizer.json and the GPT-2 vocab.json + merges.txt pair: parsing with full validation.
// Encoding and decoding are in hf_tokenizer.cpp.
#include "io/tokenizers/hf_tokenizer.h"

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

std::unordered_map<std::string, int32_t> parse_vocab(const JsonField& f) {
  const auto& obj = f.object();
  f.expect(obj.size() <= static_cast<std::size_t>(kMaxVocab),
           "has " + std::to_string(obj.size()) + " tokens, more than " + std::to_string(kMaxVocab));
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(obj.size());
  std::unordered_map<int32_t, const std::string*> by_id;
  by_id.reserve(obj.size());
  for (const auto& [token, value] : obj) {
    // Checked inline; the field name is built only for an error.
    if (!(value.is_number_integer() || value.is_number_unsigned()) || value.get<int64_t>() < 0 ||
        value.get<int64_t>() >= kMaxVocab || (value.is_number_unsigned() && value.get<uint64_t>() > INT64_MAX)) {
      JsonField{value, f.where + "[\"" + token + "\"]"}.integer(0, kMaxVocab - 1);
    }
    const auto id = static_cast<int32_t>(value.get<int64_t>());
    const auto [it, fresh] = by_id.emplace(id, &token);
    if (!fresh) {
      f.fail("gives id " + std::to_string(id) + " to both \"" + *it->second + "\" and \"" + token + "\"");
    }
    vocab.emplace(token, id);
  }
  return vocab;
}

std::pair<std::string, std::string> split_merge_line(std::string_view line, const std::string& where) {
  const std::size_t space = line.find(' ');
  require(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
              line.find(' ', space + 1) == std::string_view::npos,
          where + ": \"" + std::string(line) + "\" is not two tokens separated by one space");
  return {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

}  // namespace

HfBpeTokenizer::~HfBpeTokenizer() = default;

void HfBpeTokenizer::Trie::insert(std::string_view s, int32_t token) {
  int32_t node = 0;
  for (unsigned char c : s) {
    int32_t child = -1;
    for (const auto& [byte, index] : nodes[node].children) {
      if (byte == c) child = index;
    }
    if (child < 0) {
      child = static_cast<int32_t>(nodes.size());
      nodes[node].children.push_back({c, child});
      nodes.emplace_back();
    }
    node = child;
  }
  nodes[node].token = token;
  first[static_cast<unsigned char>(s[0])] = true;
}

std::unique_ptr<HfBpeTokenizer> HfBpeTokenizer::from_tokenizer_json(const std::string& path) {
  return parse_tokenizer_json(read_file_capped(path, kMaxTokenizerJsonBytes), path);
}

std::unique_ptr<HfBpeTokenizer> HfBpeTokenizer::parse_tokenizer_json(std::string_view text,
                                                                     const std::string& source) {
  const nlohmann::json j = parse_json_strict(text, source);
  const JsonField root = json_root(j, source);
  root.object();
  std::unique_ptr<HfBpeTokenizer> t(new HfBpeTokenizer());
  t->kind_ = "hf-bpe";
  t->content_hash_ = fnv1a64(text);

  const JsonField model = root.at("model");
  model.object();
  const std::string type = model.string_or("type", "BPE");
  model.expect(type == "BPE", "type \"" + type + "\" is not supported (only BPE: byte-level BPE as "
               "Llama 3, Qwen and GPT-2 use, and byte-fallback BPE as Llama 2 and Mistral; a "
               "SentencePiece tokenizer.model loads as such)");
  if (model.present("dropout")) {
    const JsonField d = model.at("dropout");
    d.expect_kind(d.value.is_number(), "a number or null");
    d.expect(d.value.get<double>() == 0.0, "must be null or 0: BPE dropout randomises encoding");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.present(key)) {
      model.at(key).expect(model.at(key).string().empty(),
                           "is not supported (byte-level and byte-fallback BPE do not use it)");
    }
  }
  t->normalizer_ = root.present("normalizer") ? parse_normalizer(root.at("normalizer")) : nullptr;
  t->pre_tokenizer_ = std::make_unique<PreTokenizerChain>(
      root.present("pre_tokenizer") ? parse_pre_tokenizer(root.at("pre_tokenizer")) : PreTokenizerChain{});
  t->decoder_ = root.present("decoder") ? parse_decoder(root.at("decoder")) : nullptr;

  auto vocab = parse_vocab(model.at("vocab"));
  const JsonField merges_field = model.at("merges");
  const auto& merges_array = merges_field.array();
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_array.size());
  for (std::size_t i = 0; i < merges_array.size(); ++i) {
    const nlohmann::json& v = merges_array[i];
    if (v.is_string()) {
      const auto& line = v.get_ref<const std::string&>();
      const std::size_t space = line.find(' ');
      if (space != std::string::npos && space > 0 && space + 1 < line.size() &&
          line.find(' ', space + 1) == std::string::npos) {
        merges.emplace_back(line.substr(0, space), line.substr(space + 1));
        continue;
      }
    } else if (v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_string()) {
      merges.emplace_back(v[0].get<std::string>(), v[1].get<std::string>());
      continue;
    }
    // Not well formed: the slow path names the field in its error.
    const JsonField m = merges_field.at(i);
    if (m.value.is_string()) {
      split_merge_line(m.string(), m.where);
    } else {
      m.expect_kind(m.value.is_array() && m.value.size() == 2, "a \"left right\" string or a pair");
      m.at(std::size_t{0}).string();
      m.at(1).string();
    }
  }

  BpeModel::Options options;
  options.byte_level = t->pre_tokenizer_->byte_level;
  options.ignore_merges = model.bool_or("ignore_merges", false);
  options.byte_fallback = model.bool_or("byte_fallback", false);
  options.fuse_unk = model.bool_or("fuse_unk", false);
  if (model.present("unk_token")) {
    const JsonField unk = model.at("unk_token");
    const auto it = vocab.find(unk.string());
    unk.expect(it != vocab.end(), "\"" + unk.string() + "\" is not in the vocabulary");
    options.unk_id = it->second;
  }
  t->unk_ = options.byte_level ? kNoToken : options.unk_id;
  t->model_ = std::make_unique<BpeModel>(std::move(vocab), merges, options, model.where);

  if (root.present("added_tokens")) {
    const JsonField list = root.at("added_tokens");
    for (std::size_t i = 0; i < list.array().size(); ++i) {
      const JsonField e = list.at(i);
      Added a;
      a.id = static_cast<int32_t>(e.at("id").integer(0, kMaxVocab - 1));
      a.content = e.at("content").string();
      e.at("content").expect(!a.content.empty(), "must not be empty");
      a.special = e.bool_or("special", false);
      a.single_word = e.bool_or("single_word", false);
      a.lstrip = e.bool_or("lstrip", false);
      a.rstrip = e.bool_or("rstrip", false);
      a.normalized = e.bool_or("normalized", !a.special);
      t->added_.push_back(std::move(a));
    }
  }
  t->finish(source);
  return t;
}

std::unique_ptr<HfBpeTokenizer> HfBpeTokenizer::from_gpt2_files(const std::string& vocab_path,
                                                                 const std::string& merges_path) {
  return parse_gpt2(read_file_capped(vocab_path, kMaxVocabJsonBytes),
                    read_file_capped(merges_path, kMaxMergesBytes), vocab_path + " + " + merges_path);
}

std::unique_ptr<HfBpeTokenizer> HfBpeTokenizer::parse_gpt2(std::string_view vocab_json,
                                                           std::string_view merges_txt,
                                                           const std::string& source) {
  std::unique_ptr<HfBpeTokenizer> t(new HfBpeTokenizer());
  t->kind_ = "gpt2-bpe";
  t->content_hash_ = fnv1a64(merges_txt, fnv1a64(vocab_json));
  const nlohmann::json j = parse_json_strict(vocab_json, source + " (vocabulary)");
  auto vocab = parse_vocab(json_root(j, source + " (vocabulary)"));

  require_utf8(merges_txt, source + " (merges)");
  std::vector<std::pair<std::string, std::string>> merges;
  std::size_t pos = 0, line_no = 0;
  while (pos < merges_txt.size()) {
    std::size_t end = merges_txt.find('\n', pos);
    if (end == std::string_view::npos) end = merges_txt.size();
    std::string_view line = merges_txt.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    merges.push_back(split_merge_line(line, source + " (merges) line " + std::to_string(line_no)));
  }

  PreTokenizerChain chain;
  chain.steps.push_back(make_byte_level_pre_tokenizer(/*add_prefix_space=*/false, /*use_regex=*/true));
  chain.byte_level = true;
  t->pre_tokenizer_ = std::make_unique<PreTokenizerChain>(std::move(chain));
  t->decoder_ = make_byte_level_decoder();
  BpeModel::Options options;
  options.byte_level = true;
  const auto eot = vocab.find("<|endoftext|>");
  if (eot != vocab.end()) {
    t->added_.push_back({eot->second, "<|endoftext|>", /*special=*/true, false, false, false, false});
  }
  t->model_ = std::make_unique<BpeModel>(std::move(vocab), merges, options, source);
  t->finish(source);
  if (eot != t->model_->vocab().end()) t->set_roles("<|endoftext|>", "<|endoftext|>", "", source);
  return t;
}

void HfBpeTokenizer::finish(const std::string& where) {
  int64_t size = 0;
  for (const auto& [token, id] : model_->vocab()) size = std::max<int64_t>(size, id + 1);
  for (const auto& a : added_) size = std::max<int64_t>(size, a.id + 1);
  id_to_token_.assign(static_cast<std::size_t>(size), std::string());
  has_token_.assign(static_cast<std::size_t>(size), 0);
  is_special_.assign(static_cast<std::size_t>(size), 0);
  for (const auto& [token, id] : model_->vocab()) {
    id_to_token_[id] = token;
    has_token_[id] = 1;
  }
  for (std::size_t i = 0; i < added_.size(); ++i) {
    Added& a = added_[i];
    const std::string name = where + ": added_tokens[" + std::to_string(i) + "] (\"" + a.content + "\")";
    const auto in_vocab = model_->vocab().find(a.content);
    require(in_vocab == model_->vocab().end() || in_vocab->second == a.id,
            name + " has id " + std::to_string(a.id) + " but the vocabulary gives it id " +
                std::to_string(in_vocab == model_->vocab().end() ? 0 : in_vocab->second));
    require(!has_token_[a.id] || id_to_token_[a.id] == a.content,
            name + " has id " + std::to_string(a.id) + ", which already belongs to \"" +
                id_to_token_[a.id] + "\"");
    const auto [it, fresh] = added_ids_.emplace(a.content, a.id);
    require(fresh, name + " repeats an earlier added token");
    id_to_token_[a.id] = a.content;
    has_token_[a.id] = 1;
    is_special_[a.id] = a.special ? 1 : 0;
    // Hugging Face matches normalized added tokens on normalized text, so their pattern is the
    // normalized content.
    if (a.normalized && normalizer_) {
      std::string pattern = normalizer_->normalize(a.content);
      if (!pattern.empty()) normalized_trie_.insert(pattern, static_cast<int32_t>(i));
    } else if (a.normalized) {
      normalized_trie_.insert(a.content, static_cast<int32_t>(i));
    } else {
      raw_trie_.insert(a.content, static_cast<int32_t>(i));
    }
  }
}

void HfBpeTokenizer::set_roles(const std::string& bos, const std::string& eos,
                               const std::string& pad, const std::string& where) {
  auto resolve = [&](const std::string& token, const char* role) -> int64_t {
    if (token.empty()) return kNoToken;
    const auto id = token_to_id(token);
    require(id.has_value(), where + ": the " + std::string(role) + " token \"" + token +
                                "\" is not in the vocabulary");
    return *id;
  };
  bos_ = resolve(bos, "BOS");
  eos_ = resolve(eos, "EOS");
  pad_ = pad.empty() ? eos_ : resolve(pad, "pad");
}

}  // namespace shardtune::io::tokenizers
