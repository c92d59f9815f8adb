// `shardtune tokenize` (see cmd_tokenize.h).
#include "launch/cmd_tokenize.h"

#include <cstdio>
#include <memory>
#include <optional>

#include "io/tokenizer.h"
#include "io/tokenizers/loader.h"
#include "launch/args.h"
#include "base/errors.h"

namespace shardtune::launch {

namespace {

constexpr const char* kUsage =
    "usage: shardtune tokenize --tokenizer PATH --text STRING [--no-special]\n"
    "       shardtune tokenize --tokenizer PATH --decode \"ID ID ...\" [--keep-special]\n"
    "       shardtune tokenize --tokenizer PATH --info\n"
    "PATH: tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe, a SentencePiece\n"
    ".model, a model folder holding one of them, or `byte`.\n";

struct Options {
  std::string tokenizer;
  std::optional<std::string> text, decode;
  bool info = false, no_special = false, keep_special = false;
};

Options parse(const std::vector<std::string>& args) {
  Options o;
  for_each_arg(args, "", [&](const Arg& a) {
    const std::string& key = a.key;
    auto take = [&] { return a.value(); };
    if (key == "--tokenizer") o.tokenizer = take();
    else if (key == "--text") o.text = take();
    else if (key == "--decode") o.decode = take();
    else if (key == "--info") o.info = true;
    else if (key == "--no-special") o.no_special = true;
    else if (key == "--keep-special") o.keep_special = true;
    else throw UserError("tokenize: unknown argument '" + a.raw + "'");
  });
  require(!o.tokenizer.empty(), "tokenize: --tokenizer PATH is required");
  require((o.text ? 1 : 0) + (o.decode ? 1 : 0) + (o.info ? 1 : 0) == 1,
          "tokenize: give exactly one of --text, --decode, --info");
  return o;
}

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ' || s[i] == ',' || s[i] == '\t' || s[i] == '\n') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != ',' && s[j] != '\t' && s[j] != '\n') ++j;
    const std::string word = s.substr(i, j - i);
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == word.size() && used > 0, "--decode: \"" + word + "\" is not a token id");
    ids.push_back(v);
    i = j;
  }
  return ids;
}

std::string role(int64_t id) { return id < 0 ? "none" : std::to_string(id); }

}  // namespace

int run_tokenize(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? kUserErrorExitCode : 0;
  }
  try {
    const Options o = parse(args);
    std::unique_ptr<core::Tokenizer> byte;
    std::unique_ptr<io::tokenizers::TextTokenizer> text_tok;
    const core::Tokenizer* tok = nullptr;
    if (o.tokenizer == "byte") {
      byte = io::make_tokenizer("byte", "--tokenizer");
      tok = byte.get();
    } else {
      text_tok = io::tokenizers::load_tokenizer(o.tokenizer);
      tok = text_tok.get();
    }
    if (o.info) {
      std::printf("kind: %s\nidentity: %s\nvocab_size: %lld\nbos: %s\neos: %s\npad: %s\nunk: %s\n",
                  text_tok ? text_tok->kind().c_str() : "byte", tok->identity().c_str(),
                  static_cast<long long>(tok->vocab_size()), role(tok->bos_id()).c_str(),
                  role(tok->eos_id()).c_str(), role(tok->pad_id()).c_str(),
                  role(text_tok ? text_tok->unk_id() : -1).c_str());
      return 0;
    }
    if (o.text) {
      const auto ids = text_tok ? text_tok->encode(*o.text, io::tokenizers::EncodeOptions{!o.no_special})
                                : tok->encode(*o.text);
      std::string line;
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) line.push_back(' ');
        line += std::to_string(ids[i]);
      }
      std::printf("%s\n", line.c_str());
      return 0;
    }
    const auto ids = parse_ids(*o.decode);
    const std::string text = text_tok ? text_tok->decode(ids, io::tokenizers::DecodeOptions{!o.keep_special})
                                      : tok->decode(ids);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  } catch (const UserError& e) {
    std::fprintf(stderr, "shardtune: error: %s\n", e.what());
    return kUserErrorExitCode;
  }
}

}  // namespace shardtune::launch
