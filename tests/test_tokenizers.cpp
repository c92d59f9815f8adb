// Tokenizer unit tests on small synthetic tokenizer files: BPE merging, every normalizer,
// pre-tokenizer and decoder the parsers accept, added-token semantics, and malformed files with
// the exact error each must produce.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "io/tokenizers/byte_level.h"
#include "io/tokenizers/hf_tokenizer.h"
#include "io/tokenizers/loader.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"

namespace shardtune::io::tokenizers {
namespace {

using nlohmann::json;
using Ids = std::vector<int64_t>;

std::string byte_char(unsigned char b) {
  std::string s;
  append_utf8(s, byte_level_table().byte_to_char[b]);
  return s;
}

// A tokenizer.json skeleton: the given vocabulary and merges, no pipeline.
json skeleton(const json& vocab, const json& merges) {
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"vocab", vocab},
                     {"merges", merges}}}};
}

// Byte-level: the 256 byte characters (ids 0..255), then the tokens made by `merges` in order.
json byte_level(const std::vector<std::pair<std::string, std::string>>& merges, bool gpt2_regex = true) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(static_cast<unsigned char>(b))] = b;
  json m = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = vocab.size();
    m.push_back(a + " " + b);
  }
  json j = skeleton(vocab, m);
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", gpt2_regex}};
  j["decoder"] = {{"type", "ByteLevel"}};
  return j;
}

std::unique_ptr<HfBpeTokenizer> make(const json& j) {
  return HfBpeTokenizer::parse_tokenizer_json(j.dump(), "t.json");
}

int64_t id(const TextTokenizer& t, const std::string& token) {
  const auto v = t.token_to_id(token);
  EXPECT_TRUE(v.has_value()) << token;
  return v.value_or(-1);
}

// The error text parse_tokenizer_json gives for `j` ("" if it loads).
std::string load_error(const json& j) {
  try {
    make(j);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string load_error_text(const std::string& text) {
  try {
    HfBpeTokenizer::parse_tokenizer_json(text, "t.json");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Tokenizers, ByteLevelBpeMergesByRank) {
  const auto t = make(byte_level({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}}));
  EXPECT_EQ(t->encode("hello"), Ids{id(*t, "hello")});
  EXPECT_EQ(t->encode("hello world"),
            (Ids{id(*t, "hello"), id(*t, "Ġw"), 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(t->decode(t->encode("hello world")), "hello world");
  EXPECT_EQ(t->vocab_size(), 256 + 5);
  EXPECT_EQ(t->unk_id(), kNoToken);

  // The lower rank wins: "abc" with (b c) before (a b) is "a" "bc"; the other order "ab" "c".
  const auto bc_first = make(byte_level({{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(bc_first->encode("abc"), (Ids{'a', id(*bc_first, "bc")}));
  const auto ab_first = make(byte_level({{"a", "b"}, {"b", "c"}}));
  EXPECT_EQ(ab_first->encode("abc"), (Ids{id(*ab_first, "ab"), 'c'}));
}

TEST(Tokenizers, BothMergeEncodingsAgree) {
  json legacy = byte_level({{"h", "e"}, {"l", "l"}, {"he", "ll"}});
  json pairs = legacy;
  pairs["model"]["merges"] = json::array({json::array({"h", "e"}), json::array({"l", "l"}),
                                          json::array({"he", "ll"})});
  EXPECT_EQ(make(legacy)->encode("hello hell"), make(pairs)->encode("hello hell"));
  EXPECT_EQ(make(legacy)->identity() == make(pairs)->identity(), false);  // different bytes
}

TEST(Tokenizers, IgnoreMergesEmitsWholeVocabularyWords) {
  json j = byte_level({{"a", "b"}});
  j["model"]["vocab"]["abc"] = 300;  // reachable by no merge
  auto without = make(j);
  EXPECT_EQ(without->encode("abc"), (Ids{256, 'c'}));
  j["model"]["ignore_merges"] = true;
  auto with = make(j);
  EXPECT_EQ(with->encode("abc"), Ids{300});
  EXPECT_EQ(with->decode({300}), "abc");
}

// Reference BPE: repeatedly merge the lowest-ranked adjacent pair, leftmost first.
Ids naive_bpe(const std::string& word, const std::vector<std::pair<std::string, std::string>>& merges,
              const TextTokenizer& t) {
  std::vector<std::string> sym;
  for (char c : word) sym.emplace_back(1, c);
  while (true) {
    std::size_t best = merges.size(), at = 0;
    for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
      for (std::size_t r = 0; r < best; ++r) {
        if (merges[r].first == sym[i] && merges[r].second == sym[i + 1]) {
          best = r;
          at = i;
          break;
        }
      }
    }
    if (best == merges.size()) break;
    sym[at] += sym[at + 1];
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  Ids ids;
  for (const auto& s : sym) ids.push_back(t.token_to_id(s).value());
  return ids;
}

TEST(Tokenizers, LongWordsMergeLikeShortOnes) {
  // Words longer than BpeModel::kLinearMergeLimit take the heap path; both must agree with the
  // reference on random words over a small alphabet where merges interact.
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"a", "b"}, {"b", "a"}, {"ab", "ab"}, {"a", "a"}, {"ba", "b"}, {"abab", "a"}, {"aa", "b"}, {"b", "b"}};
  const auto t = make(byte_level(merges, /*gpt2_regex=*/false));
  std::mt19937 rng(7);
  for (int n : {2, 5, 17, 63, 64, 65, 200, 1000}) {
    for (int rep = 0; rep < 20; ++rep) {
      std::string word;
      for (int i = 0; i < n; ++i) word.push_back(rng() % 3 ? 'a' : 'b');
      ASSERT_EQ(t->encode(word), naive_bpe(word, merges, *t)) << word;
    }
  }
}

TEST(Tokenizers, LongInputsStayFast) {
  // A megabyte of one letter is one pre-token: the heap merge keeps it O(n log n).
  const auto t = make(byte_level({{"a", "a"}, {"aa", "aa"}, {"aaaa", "aaaa"}}));
  const std::string text(1 << 20, 'a');
  const auto ids = t->encode(text);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(1 << 17));
  EXPECT_EQ(t->decode(ids), text);
}

TEST(Tokenizers, AddedAndSpecialTokens) {
  json j = byte_level({{"h", "i"}});
  j["added_tokens"] = json::array(
      {{{"id", 300}, {"content", "<|im_start|>"}, {"special", true}, {"normalized", false}},
       {{"id", 301}, {"content", "<think>"}, {"special", false}, {"normalized", false}},
       {{"id", 302}, {"content", "<|im"}, {"special", true}, {"normalized", false}}});
  const auto t = make(j);
  EXPECT_EQ(t->vocab_size(), 303);
  EXPECT_EQ(t->token_to_id("<|im_start|>"), 300);
  EXPECT_EQ(t->token_to_id("<think>"), 301);
  EXPECT_EQ(t->token_to_id("hi"), 256);
  EXPECT_EQ(t->token_to_id("nope"), std::nullopt);
  EXPECT_EQ(t->id_to_token(300), "<|im_start|>");
  // Longest match wins ("<|im_start|>" over "<|im").
  EXPECT_EQ(t->encode("<|im_start|>hi<think>"), (Ids{300, 256, 301}));
  // Without special parsing the special token is text; the non-special one is still matched.
  const Ids plain = t->encode("<|im_start|>hi<think>", EncodeOptions{false});
  EXPECT_EQ(plain.back(), 301);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 300), 0);
  EXPECT_EQ(t->decode(plain, DecodeOptions{false}), "<|im_start|>hi<think>");
  // Decoding drops special tokens unless asked to keep them.
  EXPECT_EQ(t->decode({300, 256, 301}), "hi<think>");
  EXPECT_EQ(t->decode({300, 256, 301}, DecodeOptions{false}), "<|im_start|>hi<think>");
  const auto added = t->added_tokens();
  ASSERT_EQ(added.size(), 3u);
  EXPECT_TRUE(added[0].special);
  EXPECT_FALSE(added[1].special);
}

TEST(Tokenizers, AddedTokenStripAndSingleWord) {
  json j = byte_level({});
  j["added_tokens"] = json::array(
      {{{"id", 300}, {"content", "<m>"}, {"lstrip", true}, {"rstrip", true}, {"normalized", false}},
       {{"id", 301}, {"content", "ony"}, {"single_word", true}, {"normalized", false}}});
  const auto t = make(j);
  const int64_t space = id(*t, "Ġ");
  // lstrip/rstrip: the token absorbs the spaces around it.
  EXPECT_EQ(t->encode("a  <m>  b"), (Ids{'a', 300, 'b'}));
  // single_word: "ony" inside "Anthony" is not the token; standing alone it is.
  const Ids inside = t->encode("Anthony");
  EXPECT_EQ(std::count(inside.begin(), inside.end(), 301), 0);
  EXPECT_EQ(t->encode("x ony y"), (Ids{'x', space, 301, space, 'y'}));
}

TEST(Tokenizers, NormalizedAddedTokensMatchNormalizedText) {
  json j = byte_level({});
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = json::array({{{"id", 300}, {"content", "Hey"}, {"normalized", true}}});
  const auto t = make(j);
  EXPECT_EQ(t->encode("HEY"), Ids{300});
  EXPECT_EQ(t->encode("hey there").front(), 300);
}

// A vocabulary of single characters plus the merges given, no byte-level mapping.
json char_level(const std::string& chars, const std::vector<std::pair<std::string, std::string>>& merges) {
  json vocab = json::object();
  std::size_t i = 0;
  while (i < chars.size()) {
    const std::size_t n = utf8_length(static_cast<unsigned char>(chars[i]));
    vocab[chars.substr(i, n)] = vocab.size();
    i += n;
  }
  json m = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = vocab.size();
    m.push_back(json::array({a, b}));
  }
  return skeleton(vocab, m);
}

TEST(Tokenizers, SplitBehaviours) {
  // The merge (a -) can only happen if "a" and "-" end up in one piece.
  json j = char_level("ab-", {{"a", "-"}, {"-", "b"}});
  auto with = [&](const std::string& behavior, bool invert = false) {
    json k = j;
    k["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior},
                          {"invert", invert}};
    return make(k)->encode("a-b");
  };
  const int64_t a = 0, b = 1, dash = 2, a_dash = 3, dash_b = 4;
  EXPECT_EQ(with("Isolated"), (Ids{a, dash, b}));
  EXPECT_EQ(with("Removed"), (Ids{a, b}));
  EXPECT_EQ(with("MergedWithPrevious"), (Ids{a_dash, b}));
  EXPECT_EQ(with("MergedWithNext"), (Ids{a, dash_b}));
  EXPECT_EQ(with("Contiguous"), (Ids{a, dash, b}));
  // Inverted, the letters are the matches: each is merged into the piece before it, so "b" joins
  // "-" and "a" (which has nothing before it) stays alone.
  EXPECT_EQ(with("MergedWithPrevious", true), (Ids{a, dash_b}));

  json r = j;
  r["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+"}}}, {"behavior", "Isolated"}};
  EXPECT_EQ(make(r)->encode("a-b"), (Ids{a, dash, b}));
}

TEST(Tokenizers, MetaspaceAndSentencePieceStyleDecoding) {
  json j = char_level("▁abc", {{"▁", "a"}, {"▁a", "b"}});
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", true}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}};
  const auto t = make(j);
  const int64_t ab = id(*t, "▁ab"), c = id(*t, "c"), sp = id(*t, "▁");
  EXPECT_EQ(t->encode("ab c"), (Ids{ab, sp, c}));
  EXPECT_EQ(t->decode(t->encode("ab c")), "ab c");
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_EQ(make(j)->encode("ab")[0], id(*t, "a"));
  // "first": only the text at the very start gets the prefix, not text after an added token.
  j["pre_tokenizer"]["prepend_scheme"] = "first";
  j["added_tokens"] = json::array({{{"id", 50}, {"content", "<s>"}, {"special", true}, {"normalized", false}}});
  const auto first = make(j);
  EXPECT_EQ(first->encode("ab<s>ab"), (Ids{ab, 50, id(*t, "a"), id(*t, "b")}));
}

TEST(Tokenizers, ByteFallbackAndLlama2Decoders) {
  // Llama 2's tokenizer.json pipeline: Prepend + Replace normalizer, byte fallback, and the
  // Replace / ByteFallback / Fuse / Strip decoder chain.
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = vocab.size();
  }
  for (const char* s : {"▁", "h", "i", "▁h", "▁hi"}) vocab[s] = vocab.size();
  json j = skeleton(vocab, json::array({"▁ h", "▁h i"}));
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}};
  j["decoder"] = {{"type", "Sequence"}, {"decoders", json::array({
      {{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}}, {{"type", "ByteFallback"}},
      {{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  j["model"]["byte_fallback"] = true;
  j["model"]["unk_token"] = "<unk>";
  j["added_tokens"] = json::array({{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}}});
  const auto t = make(j);
  const int64_t hi = id(*t, "▁hi"), sp = id(*t, "▁");
  // "é" is not in the vocabulary: its two UTF-8 bytes become <0xC3> <0xA9>.
  EXPECT_EQ(t->encode("hi é"), (Ids{hi, sp, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->decode(t->encode("hi é")), "hi é");
  EXPECT_EQ(t->decode(t->encode("  hi  ")), "  hi  ");
  EXPECT_EQ(t->unk_id(), 0);
  // A cut UTF-8 sequence decodes to U+FFFD per byte, as Hugging Face's ByteFallback does.
  EXPECT_EQ(t->decode({hi, 3 + 0xC3}), "hi\xEF\xBF\xBD");
}

TEST(Tokenizers, UnknownCharacters) {
  json j = char_level("ab", {});
  EXPECT_EQ(load_error(j), "");
  try {
    make(j)->encode("a€b");
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "the character U+20AC has no token in this vocabulary, which has neither "
                           "byte fallback nor an unknown token");
  }
  j["model"]["vocab"]["<unk>"] = 2;
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(make(j)->encode("a€€b"), (Ids{0, 2, 2, 1}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(make(j)->encode("a€€b"), (Ids{0, 2, 1}));
}

TEST(Tokenizers, NormalizersNfcAndFriends) {
  json j = byte_level({});
  j["normalizer"] = {{"type", "NFC"}};
  const auto nfc = make(j);
  // "e" + COMBINING ACUTE composes to "é" (2 bytes) before byte-level encoding.
  EXPECT_EQ(nfc->encode("e\xCC\x81"), nfc->encode("\xC3\xA9"));
  EXPECT_EQ(nfc->decode(nfc->encode("e\xCC\x81")), "\xC3\xA9");
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFKC"}}, {{"type", "Lowercase"}},
                                                                        {{"type", "Strip"}}})}};
  const auto seq = make(j);
  EXPECT_EQ(seq->decode(seq->encode("  ＡＢ Ⅻ  ")), "ab xii");
}

TEST(Tokenizers, InvalidUtf8IsAnError) {
  const auto t = make(byte_level({}));
  for (const std::string& bad : {std::string("ab\xC3"), std::string("ab\xC3\x28"), std::string("\xED\xA0\x80"),
                                std::string("\xF4\x90\x80\x80"), std::string("\xC0\xAF"), std::string("\xFF")}) {
    try {
      t->encode(bad);
      ADD_FAILURE() << "accepted invalid UTF-8";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("the text to encode is not valid UTF-8 (byte offset"),
                std::string::npos);
    }
  }
  try {
    t->encode("ok\xFF");
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "the text to encode is not valid UTF-8 (byte offset 2)");
  }
}

TEST(Tokenizers, DecodeRefusesIdsOutsideTheVocabulary) {
  json j = byte_level({});
  j["added_tokens"] = json::array({{{"id", 300}, {"content", "<x>"}, {"special", true}}});  // 256..299: holes
  const auto t = make(j);
  for (int64_t bad : {int64_t{-1}, int64_t{280}, int64_t{301}}) {
    try {
      t->decode({bad});
      ADD_FAILURE() << bad;
    } catch (const UserError& e) {
      EXPECT_EQ(std::string(e.what()), "cannot decode id " + std::to_string(bad) +
                                           ": it names no token (vocabulary size 301)");
    }
  }
}

TEST(Tokenizers, RoundTripsRandomUtf8) {
  json j = byte_level({{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}});
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({
      {{"type", "Split"}, {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
       {"behavior", "Isolated"}, {"invert", false}},
      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  const auto t = make(j);
  std::mt19937 rng(11);
  for (int rep = 0; rep < 2000; ++rep) {
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      char32_t cp;
      switch (rng() % 4) {
        case 0: cp = rng() % 0x80; break;
        case 1: cp = 0x80 + rng() % 0x780; break;
        case 2: cp = 0x800 + rng() % 0xF800; break;
        default: cp = 0x10000 + rng() % 0x100000; break;
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      append_utf8(s, cp);
    }
    ASSERT_EQ(t->decode(t->encode(s)), s);
  }
}

TEST(Tokenizers, PathologicalRegexEndsWithAnError) {
  json j = byte_level({});
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({
      {{"type", "Split"}, {"pattern", {{"Regex", "(a|aa)+$"}}}, {"behavior", "Isolated"}},
      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  const auto t = make(j);
  const auto start = std::chrono::steady_clock::now();
  try {
    t->encode(std::string(60, 'a') + "!");
    ADD_FAILURE() << "the match limit was not reached";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "t.json: pre_tokenizer.pretokenizers[0].pattern.Regex: the regex "
                                     "\"(a|aa)+$\" failed on the input text: match limit exceeded");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

TEST(Tokenizers, MalformedTokenizerJsonErrors) {
  const json good = byte_level({{"a", "b"}});
  EXPECT_EQ(load_error(good), "");
  auto with = [&](auto edit) {
    json j = good;
    edit(j);
    return load_error(j);
  };
  EXPECT_EQ(load_error_text("[1, 2").rfind("t.json: not valid JSON: ", 0), 0u);
  EXPECT_EQ(load_error_text("[]"), "t.json: expected an object, got array");
  EXPECT_EQ(load_error_text(R"({"model": {"vocab": {"a": 0, "a": 1}, "merges": []}})"),
            "t.json: the key \"a\" appears twice in one object");
  EXPECT_EQ(load_error_text(std::string(100, '[') + std::string(100, ']')),
            "t.json: nesting deeper than 64 levels");
  EXPECT_EQ(load_error_text("{\"a\": \"\xFF\"}").rfind("t.json: not valid JSON: ", 0), 0u);
  EXPECT_EQ(with([](json& j) { j.erase("model"); }), "t.json: has no field \"model\"");
  EXPECT_EQ(with([](json& j) { j["model"]["type"] = "WordPiece"; }),
            "t.json: model type \"WordPiece\" is not supported (only BPE: byte-level BPE as Llama 3, "
            "Qwen and GPT-2 use, and byte-fallback BPE as Llama 2 and Mistral; a SentencePiece "
            "tokenizer.model loads as such)");
  EXPECT_EQ(with([](json& j) { j["model"]["dropout"] = 0.1; }),
            "t.json: model.dropout must be null or 0: BPE dropout randomises encoding");
  EXPECT_EQ(with([](json& j) { j["model"]["vocab"] = json::array(); }),
            "t.json: model.vocab expected an object, got array");
  EXPECT_EQ(with([](json& j) { j["model"]["vocab"]["x"] = -1; }),
            "t.json: model.vocab[\"x\"] -1 is outside [0, 4194303]");
  EXPECT_EQ(with([](json& j) { j["model"]["vocab"]["x"] = "1"; }),
            "t.json: model.vocab[\"x\"] expected an integer, got string");
  EXPECT_EQ(with([](json& j) { j["model"]["vocab"]["zz"] = 0; }),
            "t.json: model.vocab gives id 0 to both \"zz\" and \"Ā\"");
  EXPECT_EQ(with([](json& j) { j["model"]["merges"].push_back("a qq"); }),
            "t.json: model merges[1] (\"a\" \"qq\"): \"qq\" is not in the vocabulary");
  EXPECT_EQ(with([](json& j) { j["model"]["merges"].push_back("b a"); }),
            "t.json: model merges[1] (\"b\" \"a\"): the merged token \"ba\" is not in the vocabulary");
  EXPECT_EQ(with([](json& j) { j["model"]["merges"].push_back("a b"); }),
            "t.json: model merges[1] (\"a\" \"b\"): repeats merges[0]");
  EXPECT_EQ(with([](json& j) { j["model"]["merges"][0] = "a  b"; }),
            "t.json: model.merges[0]: \"a  b\" is not two tokens separated by one space");
  EXPECT_EQ(with([](json& j) { j["model"]["merges"][0] = 5; }),
            "t.json: model.merges[0] expected a \"left right\" string or a pair, got number");
  EXPECT_EQ(with([](json& j) { j["model"]["vocab"].erase(byte_char(0)); }),
            "t.json: model: a byte-level vocabulary must hold a token for every byte, and byte 0x00 "
            "(\"Ā\") has none");
  EXPECT_EQ(with([](json& j) { j["model"]["unk_token"] = "<unk>"; }),
            "t.json: model.unk_token \"<unk>\" is not in the vocabulary");
  EXPECT_EQ(with([](json& j) { j["normalizer"] = {{"type", "BertNormalizer"}}; }),
            "t.json: normalizer.type \"BertNormalizer\" is not a supported normalizer (supported: NFC, "
            "NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence)");
  EXPECT_EQ(with([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }),
            "t.json: pre_tokenizer.type \"Whitespace\" is not a supported pre-tokenizer (supported: "
            "Split, ByteLevel, Metaspace, Digits, Sequence)");
  EXPECT_EQ(with([](json& j) {
              j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({
                  {{"type", "ByteLevel"}}, {{"type", "Digits"}}})}};
            }),
            "t.json: pre_tokenizer.pretokenizers[1] follows a ByteLevel pre-tokenizer; ByteLevel must "
            "be the last step");
  EXPECT_EQ(with([](json& j) {
              j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}};
            }),
            "t.json: pre_tokenizer.pattern.Regex: cannot compile the regex \"(a\": missing closing "
            "parenthesis (at offset 2)");
  EXPECT_EQ(with([](json& j) {
              j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
            }),
            "t.json: pre_tokenizer.behavior \"Sideways\" is not a split behaviour (Removed, Isolated, "
            "MergedWithPrevious, MergedWithNext, Contiguous)");
  EXPECT_EQ(with([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }),
            "t.json: decoder.type \"WordPiece\" is not a supported decoder (supported: ByteLevel, "
            "Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)");
  EXPECT_EQ(with([](json& j) { j["added_tokens"] = json::array({{{"id", 0}, {"content", "<x>"}}}); }),
            "t.json: added_tokens[0] (\"<x>\") has id 0, which already belongs to \"Ā\"");
  EXPECT_EQ(with([](json& j) { j["added_tokens"] = json::array({{{"id", 400}, {"content", "ab"}}}); }),
            "t.json: added_tokens[0] (\"ab\") has id 400 but the vocabulary gives it id 256");
  EXPECT_EQ(with([](json& j) {
              j["added_tokens"] = json::array({{{"id", 400}, {"content", "<x>"}}, {{"id", 401}, {"content", "<x>"}}});
            }),
            "t.json: added_tokens[1] (\"<x>\") repeats an earlier added token");
  EXPECT_EQ(with([](json& j) { j["added_tokens"] = json::array({{{"id", 400}, {"content", ""}}}); }),
            "t.json: added_tokens[0].content must not be empty");
  EXPECT_EQ(with([](json& j) { j["added_tokens"] = json::array({{{"id", 1 << 23}, {"content", "<x>"}}}); }),
            "t.json: added_tokens[0].id 8388608 is outside [0, 4194303]");
}

TEST(Tokenizers, Gpt2PairParsing) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(static_cast<unsigned char>(b))] = b;
  vocab["ab"] = 256;
  vocab["<|endoftext|>"] = 257;
  const auto t = HfBpeTokenizer::parse_gpt2(vocab.dump(), "#version: 0.2\na b\n", "v + m");
  EXPECT_EQ(t->encode("ab<|endoftext|>"), (Ids{256, 257}));
  EXPECT_EQ(t->eos_id(), 257);
  EXPECT_EQ(t->bos_id(), 257);
  EXPECT_EQ(t->pad_id(), 257);
  EXPECT_EQ(t->kind(), "gpt2-bpe");
  auto error = [&](const std::string& merges) {
    try {
      HfBpeTokenizer::parse_gpt2(vocab.dump(), merges, "v + m");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error("#version: 0.2\na b c\n"),
            "v + m (merges) line 2: \"a b c\" is not two tokens separated by one space");
  EXPECT_EQ(error("a \xFF\n"), "v + m (merges) is not valid UTF-8 (byte offset 2)");
  EXPECT_EQ(error("a xy\n"), "v + m merges[0] (\"a\" \"xy\"): \"xy\" is not in the vocabulary");
}

TEST(Tokenizers, IdentityIsContentDerived) {
  const json a = byte_level({{"a", "b"}});
  EXPECT_EQ(make(a)->identity(), make(a)->identity());
  EXPECT_EQ(make(a)->identity().rfind("hf-bpe-v1:", 0), 0u);
  EXPECT_NE(make(a)->identity(), make(byte_level({{"b", "a"}}))->identity());
  auto t = make(a);
  const std::string before = t->identity();
  t->set_roles("a", "b", "", "roles");
  EXPECT_NE(t->identity(), before);  // BOS/EOS/pad are part of it
  EXPECT_EQ(t->pad_id(), t->eos_id());
}

TEST(Tokenizers, FileSizeCap) {
  const std::string path = std::string(SHARDTUNE_BINARY_DIR) + "/tokenizer_cap_test.bin";
  std::ofstream(path) << std::string(100, 'x');
  EXPECT_EQ(read_file_capped(path, 100).size(), 100u);
  try {
    read_file_capped(path, 99);
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": 100 bytes is more than the 99 allowed for this kind of file");
  }
}

// Loader: folder layouts and role files.
class TokenizerLoader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(SHARDTUNE_BINARY_DIR) / ("tokenizer_loader_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  std::string error(const std::string& path) {
    try {
      load_tokenizer(path);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  }
  std::filesystem::path dir_;
};

TEST_F(TokenizerLoader, PicksByLayoutAndReadsRoles) {
  const std::string d = dir_.string();
  EXPECT_EQ(error(d), d + ": no tokenizer found in this folder (looked for tokenizer.json, vocab.json "
                          "+ merges.txt, encoder.json + vocab.bpe, tokenizer.model)");
  EXPECT_EQ(error(d + "/nothing"), d + "/nothing: no such file or folder");
  write("notes.txt", "x");
  EXPECT_EQ(error(d + "/notes.txt"), d + "/notes.txt: not a tokenizer file (expected tokenizer.json, "
                                         "vocab.json + merges.txt, encoder.json + vocab.bpe, or a "
                                         "SentencePiece .model)");
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(static_cast<unsigned char>(b))] = b;
  vocab["<|endoftext|>"] = 256;
  write("vocab.json", vocab.dump());
  EXPECT_EQ(error(d + "/vocab.json"), d + "/vocab.json: a GPT-2 tokenizer needs vocab.json and "
                                          "merges.txt side by side, and " + d + "/merges.txt is missing");
  write("merges.txt", "#version: 0.2\n");
  auto gpt2 = load_tokenizer(d);
  EXPECT_EQ(gpt2->kind(), "gpt2-bpe");
  EXPECT_EQ(gpt2->eos_id(), 256);

  json t = byte_level({});
  t["added_tokens"] = json::array({{{"id", 300}, {"content", "<s>"}, {"special", true}},
                                   {{"id", 301}, {"content", "</s>"}, {"special", true}}});
  write("tokenizer.json", t.dump());  // now preferred over the pair
  auto hf = load_tokenizer(d);
  EXPECT_EQ(hf->kind(), "hf-bpe");
  EXPECT_EQ(hf->bos_id(), kNoToken);  // no role file yet
  write("special_tokens_map.json", R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}})");
  hf = load_tokenizer(d);
  EXPECT_EQ(hf->bos_id(), 300);
  EXPECT_EQ(hf->eos_id(), 301);
  EXPECT_EQ(hf->pad_id(), 301);
  write("tokenizer_config.json", R"({"bos_token": null, "pad_token": "!"})");
  hf = load_tokenizer(d);  // config wins; eos still from special_tokens_map.json
  EXPECT_EQ(hf->bos_id(), kNoToken);
  EXPECT_EQ(hf->eos_id(), 301);
  EXPECT_EQ(hf->pad_id(), '!');
  EXPECT_EQ(load_tokenizer(d + "/tokenizer.json")->identity(), hf->identity());
  write("tokenizer_config.json", R"({"eos_token": "<eos>"})");
  EXPECT_EQ(error(d), d + "/tokenizer_config.json: the EOS token \"<eos>\" is not in the vocabulary");
  write("tokenizer_config.json", R"({"eos_token": 7})");
  EXPECT_EQ(error(d), d + "/tokenizer_config.json: eos_token expected a string, got number");
}

}  // namespace
}  // namespace shardtune::io::tokenizers
