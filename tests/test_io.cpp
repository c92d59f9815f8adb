// Tests for io/: byte tokenizer, tokenization masks, JSONL datasets and their errors (WordNet:
// test_wordnet.cpp).
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/errors.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "test_helpers.h"

namespace st = shardtune;
namespace io = shardtune::io;
namespace fs = std::filesystem;
using shardtune::testing::expect_user_error;

namespace {

std::vector<int64_t> ids(std::initializer_list<int64_t> l) { return l; }

}  // namespace

// ---- Tokenizer -------------------------------------------------------------------------------

TEST(ByteTokenizer, RoundTripAsciiAndUtf8) {
  io::ByteTokenizer tok;
  EXPECT_EQ(tok.encode("Hi"), ids({72, 105}));
  // "é" is C3 A9 and "€" is E2 82 AC: every byte must come out in 128..255, never negative.
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC 5 \xF0\x9F\x98\x80";
  const std::vector<int64_t> enc = tok.encode(text);
  ASSERT_EQ(enc.size(), text.size());
  EXPECT_EQ(enc[3], 0xC3);
  EXPECT_EQ(enc[4], 0xA9);
  for (int64_t id : enc) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 256);
  }
  EXPECT_EQ(tok.decode(enc), text);
  EXPECT_EQ(tok.encode(""), std::vector<int64_t>{});
  EXPECT_EQ(tok.decode({}), "");
}

TEST(ByteTokenizer, DecodeDropsSpecialIds) {
  io::ByteTokenizer tok;
  EXPECT_EQ(tok.decode({tok.bos_id(), 'o', 'k', tok.eos_id(), tok.pad_id(), 1000, -5}), "ok");
  EXPECT_EQ(tok.vocab_size(), 259);
  EXPECT_EQ(tok.bos_id(), 256);
  EXPECT_EQ(tok.eos_id(), 257);
  EXPECT_EQ(tok.pad_id(), 258);
  EXPECT_EQ(tok.identity(), "byte-v1");
}

TEST(ByteTokenizer, Factory) {
  auto tok = io::make_tokenizer("byte", "model.tokenizer");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->identity(), "byte-v1");
  expect_user_error([] { io::make_tokenizer("bpe", "model.tokenizer"); },
                    "model.tokenizer = bpe: no such file or folder (byte, none, or a tokenizer "
                    "path)");
}

// ---- tokenize --------------------------------------------------------------------------------

TEST(Tokenize, MasksBosAndPrompt) {
  io::ByteTokenizer tok;
  const io::Example ex = io::tokenize(io::Record{"ab", "cd"}, tok, 100, false);
  EXPECT_EQ(ex.tokens, ids({256, 'a', 'b', 'c', 'd', 257}));
  EXPECT_EQ(ex.labels, ids({-100, -100, -100, 'c', 'd', 257}));
}

TEST(Tokenize, TrainOnPromptMasksOnlyBos) {
  io::ByteTokenizer tok;
  const io::Example ex = io::tokenize(io::Record{"ab", "cd"}, tok, 100, true);
  EXPECT_EQ(ex.tokens, ids({256, 'a', 'b', 'c', 'd', 257}));
  EXPECT_EQ(ex.labels, ids({-100, 'a', 'b', 'c', 'd', 257}));
}

TEST(Tokenize, LanguageModellingRecordTrainsEverythingButBos) {
  io::ByteTokenizer tok;
  const io::Example ex = io::tokenize(io::Record{"", "xy"}, tok, 100, false);
  EXPECT_EQ(ex.tokens, ids({256, 'x', 'y', 257}));
  EXPECT_EQ(ex.labels, ids({-100, 'x', 'y', 257}));
}

TEST(Tokenize, TruncatesToMaxLen) {
  io::ByteTokenizer tok;
  io::Example ex = io::tokenize(io::Record{"ab", "cdef"}, tok, 5, false);
  EXPECT_EQ(ex.tokens, ids({256, 'a', 'b', 'c', 'd'}));
  EXPECT_EQ(ex.labels, ids({-100, -100, -100, 'c', 'd'}));
  // Truncated inside the prompt: everything masked, and no out-of-range writes.
  ex = io::tokenize(io::Record{"abcdef", "gh"}, tok, 3, false);
  EXPECT_EQ(ex.tokens, ids({256, 'a', 'b'}));
  EXPECT_EQ(ex.labels, ids({-100, -100, -100}));
  // Exactly fitting keeps EOS.
  ex = io::tokenize(io::Record{"a", "b"}, tok, 4, false);
  EXPECT_EQ(ex.tokens, ids({256, 'a', 'b', 257}));
  expect_user_error([&] { io::tokenize(io::Record{"a", "b"}, tok, 1, false); }, "max_len");
}

TEST(Tokenize, AllKeepsOrder) {
  io::ByteTokenizer tok;
  const auto all = io::tokenize_all({{"", "a"}, {"p", "b"}}, tok, 16, false);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].tokens, ids({256, 'a', 257}));
  EXPECT_EQ(all[1].tokens, ids({256, 'p', 'b', 257}));
  EXPECT_EQ(all[1].labels, ids({-100, -100, 'b', 257}));
}

// ---- JSONL -----------------------------------------------------------------------------------

using Jsonl = shardtune::testing::TempDirTest;

TEST_F(Jsonl, ReadsAllThreeForms) {
  const std::string path = write("data.jsonl",
                                 "{\"text\": \"hello\"}\n"
                                 "\n"
                                 "   \t\n"
                                 "{\"prompt\": \"Q?\", \"response\": \"A.\", \"id\": 7}\n"
                                 "{\"instruction\": \"Do\", \"input\": \"this\", \"output\": \"done\"}\r\n"
                                 "{\"instruction\": \"Go\", \"input\": \"\", \"output\": \"went\"}\n"
                                 "{\"instruction\": \"Run\", \"output\": \"ran\"}\n"
                                 "{\"text\": \"caf\xC3\xA9 \\u00e9\"}");  // no final newline
  const std::vector<io::Record> r = io::read_jsonl(path);
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[0].prompt, "");
  EXPECT_EQ(r[0].response, "hello");
  EXPECT_EQ(r[1].prompt, "Q?");
  EXPECT_EQ(r[1].response, "A.");
  EXPECT_EQ(r[2].prompt, "Do\nthis\n");
  EXPECT_EQ(r[2].response, "done");
  EXPECT_EQ(r[3].prompt, "Go\n");
  EXPECT_EQ(r[3].response, "went");
  EXPECT_EQ(r[4].prompt, "Run\n");
  EXPECT_EQ(r[4].response, "ran");
  EXPECT_EQ(r[5].response, "caf\xC3\xA9 \xC3\xA9");
}

TEST_F(Jsonl, InvalidJsonNamesFileAndLine) {
  const std::string path = write("data.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":3: invalid JSON: ");
}

TEST_F(Jsonl, MissingKeysNamesFileAndLine) {
  const std::string path = write("data.jsonl",
                                 "{\"text\": \"a\"}\n{\"text\": \"b\"}\n\n\n{\"body\": \"c\"}\n");
  expect_user_error(
      [&] { io::read_jsonl(path); },
      path + ":5: object has none of the keys text, prompt/response, instruction/output");
}

TEST_F(Jsonl, WrongTypeNamesKey) {
  std::string path = write("a.jsonl", "{\"text\": 5}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: text: expected a string, got integer");
  path = write("b.jsonl", "{\"text\": \"x\"}\n{\"prompt\": \"p\", \"response\": null}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":2: response: expected a string, got null");
  path = write("c.jsonl", "{\"instruction\": \"i\", \"input\": [1], \"output\": \"o\"}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: input: expected a string, got array");
}

TEST_F(Jsonl, IncompleteOrMixedForms) {
  std::string path = write("a.jsonl", "{\"prompt\": \"p\"}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: object has \"prompt\" but no \"response\"");
  path = write("b.jsonl", "{\"output\": \"o\"}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: object has \"output\" but no \"instruction\"");
  path = write("c.jsonl", "{\"text\": \"t\", \"prompt\": \"p\", \"response\": \"r\"}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: object mixes the forms");
}

TEST_F(Jsonl, NonObjectLine) {
  const std::string path = write("data.jsonl", "[1, 2]\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: expected a JSON object, got array");
}

TEST_F(Jsonl, EmptyAndMissingFiles) {
  std::string path = write("empty.jsonl", "");
  EXPECT_EQ(expect_user_error([&] { io::read_jsonl(path); }, path), path + ": no records");
  path = write("blank.jsonl", "\n  \n\n");
  EXPECT_EQ(expect_user_error([&] { io::read_jsonl(path); }, path), path + ": no records");
  path = (dir_ / "missing.jsonl").string();
  EXPECT_EQ(expect_user_error([&] { io::read_jsonl(path); }, path), path + ": cannot open");
  expect_user_error([&] { io::read_jsonl(dir_.string()); }, dir_.string() + ": cannot open");
}
