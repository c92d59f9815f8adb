// Tests for io/: byte tokenizer, tokenization masks, JSONL datasets and their errors, WordNet.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/tokenizer.h"
#include "io/wordnet.h"
#include "parallel/errors.h"

namespace st = shardtune;
namespace io = shardtune::io;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test (mkdtemp), removed afterwards.
class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "shardtune_test_io_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out << content;
    return path;
  }
  fs::path dir_;
};

// Runs `fn`, expects a UserError whose message contains `needle`; returns the message.
template <typename Fn>
std::string expect_user_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
  } catch (const st::UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nwanted: " << needle;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no UserError thrown; wanted: " << needle;
  return {};
}

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
                    "model.tokenizer: unknown tokenizer 'bpe' (known: byte)");
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

using Jsonl = TempDir;

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
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: \"text\" must be a string");
  path = write("b.jsonl", "{\"text\": \"x\"}\n{\"prompt\": \"p\", \"response\": null}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":2: \"response\" must be a string");
  path = write("c.jsonl", "{\"instruction\": \"i\", \"input\": [1], \"output\": \"o\"}\n");
  expect_user_error([&] { io::read_jsonl(path); }, path + ":1: \"input\" must be a string");
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

// ---- WordNet (real Debian wordnet-base data) -------------------------------------------------

namespace {

const std::vector<io::Synset>& wordnet() {
  static const std::vector<io::Synset> synsets = io::read_wordnet(io::kDefaultWordNetDir);
  return synsets;
}

}  // namespace

TEST(WordNet, ParsesAllFilesQuicklyWithExactCounts) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<io::Synset> synsets = io::read_wordnet(io::kDefaultWordNetDir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::map<char, int> by_pos;
  for (const auto& s : synsets) by_pos[s.pos]++;
  EXPECT_EQ(by_pos['n'], 82115);
  EXPECT_EQ(by_pos['v'], 13767);
  EXPECT_EQ(by_pos['a'] + by_pos['s'], 18156);
  EXPECT_GT(by_pos['s'], 0);
  EXPECT_EQ(by_pos['r'], 3621);
  EXPECT_EQ(synsets.size(), 82115u + 13767u + 18156u + 3621u);
  // Budget is 1 s for an optimized build; a sanitizer/debug build gets more room.
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(seconds, 1.0);
#else
  EXPECT_LT(seconds, 10.0);
#endif
  // File order: all nouns, then verbs, then adjectives, then adverbs.
  EXPECT_EQ(synsets.front().pos, 'n');
  EXPECT_EQ(synsets.back().pos, 'r');
  for (const auto& s : synsets) {
    ASSERT_FALSE(s.words.empty());
    ASSERT_FALSE(s.definition.empty()) << s.offset;
    ASSERT_EQ(s.definition.find("; \""), std::string::npos);
    ASSERT_EQ(s.gloss.compare(0, s.definition.size(), s.definition), 0);
    for (const auto& w : s.words) ASSERT_EQ(w.find('_'), std::string::npos) << w;
  }
}

TEST(WordNet, KnownSynsets) {
  const auto& synsets = wordnet();
  const io::Synset* dog = nullptr;
  for (const auto& s : synsets) {
    if (s.pos == 'n' && s.words.front() == "dog") {
      dog = &s;
      break;
    }
  }
  ASSERT_NE(dog, nullptr);
  EXPECT_EQ(dog->offset, 2084071u);
  EXPECT_EQ(dog->words, (std::vector<std::string>{"dog", "domestic dog", "Canis familiaris"}));
  EXPECT_EQ(dog->definition.rfind("a member of the genus Canis", 0), 0u) << dog->definition;
  EXPECT_EQ(dog->definition.back(), 's');  // "...; occurs in many breeds", example cut off
  EXPECT_NE(dog->gloss.find("\"the dog barked all night\""), std::string::npos);

  // Adjective markers are stripped: 00014358 s "abounding galore(ip)", 00019731 s "ready_to_hand(p)".
  bool saw_galore = false, saw_ready = false;
  for (const auto& s : synsets) {
    if (s.pos == 's' && s.offset == 14358) {
      EXPECT_EQ(s.words, (std::vector<std::string>{"abounding", "galore"}));
      saw_galore = true;
    }
    if (s.pos == 's' && s.offset == 19731) {
      EXPECT_EQ(s.words, (std::vector<std::string>{"handy", "ready to hand"}));
      saw_ready = true;
    }
    for (const auto& w : s.words) ASSERT_EQ(w.find('('), std::string::npos) << w;
  }
  EXPECT_TRUE(saw_galore);
  EXPECT_TRUE(saw_ready);
}

TEST(WordNet, SplitIsDeterministicDisjointAndProportional) {
  const auto& synsets = wordnet();
  const int kEvalPercent = 10;
  const auto train = io::wordnet_records(synsets, io::WordNetTask::kGlosses, io::Split::kTrain,
                                         kEvalPercent);
  const auto eval = io::wordnet_records(synsets, io::WordNetTask::kGlosses, io::Split::kEval,
                                        kEvalPercent);
  EXPECT_EQ(train.size() + eval.size(), synsets.size());
  const double frac = double(eval.size()) / double(synsets.size());
  EXPECT_NEAR(frac, kEvalPercent / 100.0, 0.01);

  // Deterministic: same records in the same order on a second call.
  const auto eval2 = io::wordnet_records(synsets, io::WordNetTask::kGlosses, io::Split::kEval,
                                         kEvalPercent);
  ASSERT_EQ(eval2.size(), eval.size());
  for (size_t i = 0; i < eval.size(); ++i) ASSERT_EQ(eval[i].response, eval2[i].response);

  // Disjoint by synset, and the define task uses the same split.
  std::set<std::pair<char, uint64_t>> eval_ids;
  size_t eval_count = 0;
  for (const auto& s : synsets) {
    if (io::synset_split(s, kEvalPercent) == io::Split::kEval) {
      eval_ids.insert({s.pos, s.offset});
      ++eval_count;
    }
  }
  EXPECT_EQ(eval_count, eval.size());
  const auto define_eval = io::wordnet_records(synsets, io::WordNetTask::kDefine,
                                               io::Split::kEval, kEvalPercent);
  EXPECT_EQ(define_eval.size(), eval.size());

  // A fixed synset always lands on the same side (guards against a platform-dependent hash):
  // FNV-1a 64 of "n02084071" mod 100.
  io::Synset dog;
  dog.pos = 'n';
  dog.offset = 2084071;
  uint64_t h = 14695981039346656037ULL;
  for (char c : std::string("n02084071")) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  const int bucket = static_cast<int>(h % 100);
  EXPECT_EQ(io::synset_split(dog, bucket), io::Split::kTrain);
  EXPECT_EQ(io::synset_split(dog, bucket + 1), io::Split::kEval);

  // Edge percents.
  EXPECT_TRUE(io::wordnet_records(synsets, io::WordNetTask::kGlosses, io::Split::kEval, 0).empty());
  EXPECT_TRUE(io::wordnet_records(synsets, io::WordNetTask::kGlosses, io::Split::kTrain, 100).empty());
  expect_user_error([&] { io::synset_split(dog, 101); }, "eval_percent");
}

TEST(WordNet, RecordFormats) {
  io::Synset s;
  s.pos = 'n';
  s.offset = 2084071;
  s.words = {"dog", "domestic dog"};
  s.definition = "a member of the genus Canis";
  s.gloss = s.definition + "; \"the dog barked\"";
  const int pct = 0;  // everything in train
  const auto glosses = io::wordnet_records({s}, io::WordNetTask::kGlosses, io::Split::kTrain, pct);
  ASSERT_EQ(glosses.size(), 1u);
  EXPECT_EQ(glosses[0].prompt, "");
  EXPECT_EQ(glosses[0].response, "dog: a member of the genus Canis");
  const auto define = io::wordnet_records({s}, io::WordNetTask::kDefine, io::Split::kTrain, pct);
  ASSERT_EQ(define.size(), 1u);
  EXPECT_EQ(define[0].prompt, "define: dog\n");
  EXPECT_EQ(define[0].response, "a member of the genus Canis");

  // And on the real data every define record has that shape.
  const auto all = io::wordnet_records(wordnet(), io::WordNetTask::kDefine, io::Split::kTrain, 10);
  ASSERT_FALSE(all.empty());
  for (const auto& r : all) {
    ASSERT_EQ(r.prompt.rfind("define: ", 0), 0u) << r.prompt;
    ASSERT_EQ(r.prompt.back(), '\n');
    ASSERT_GT(r.prompt.size(), std::string("define: \n").size());
    ASSERT_FALSE(r.response.empty());
  }
}

using WordNetErrors = TempDir;

TEST_F(WordNetErrors, MissingDirectoryNamesFile) {
  const std::string dir = (dir_ / "nowhere").string();
  expect_user_error([&] { io::read_wordnet(dir); }, "data.noun: cannot open");
}

TEST_F(WordNetErrors, MalformedLineNamesFileAndLine) {
  const std::string header = "  1 This software and database is being provided\n  2 more license\n";
  write("data.noun", header +
                         "00001740 03 n 01 entity 0 000 | that which is perceived\n"
                         "00001930 03 n 02 physical_entity 0 thing 0 001 @ 00001740 n 0000 | "
                         "an entity that has physical existence; \"a thing\"  \n");
  write("data.verb", header +
                         "00001740 29 v 01 breathe 0 000 02 + 02 00 + 08 00 | draw air\n");
  write("data.adj", header + "00014358 00 s 02 abounding 0 galore(ip) 0 000 | plentiful\n");
  write("data.adv", header + "00001740 02 r 01 a_cappella 0 000 | without accompaniment\n");
  const auto synsets = io::read_wordnet(dir_.string());
  ASSERT_EQ(synsets.size(), 5u);
  EXPECT_EQ(synsets[1].words, (std::vector<std::string>{"physical entity", "thing"}));
  EXPECT_EQ(synsets[1].definition, "an entity that has physical existence");
  EXPECT_EQ(synsets[1].gloss, "an entity that has physical existence; \"a thing\"");
  EXPECT_EQ(synsets[3].words, (std::vector<std::string>{"abounding", "galore"}));
  EXPECT_EQ(synsets[4].words, (std::vector<std::string>{"a cappella"}));

  const std::string noun = (dir_ / "data.noun").string();
  const std::string adj = (dir_ / "data.adj").string();
  // Pointer count claims 2 pointers, only 1 listed.
  write("data.noun", header + "00001740 03 n 01 entity 0 002 @ 00001740 n 0000 | x\n");
  expect_user_error([&] { io::read_wordnet(dir_.string()); }, noun + ":3: ");
  // No gloss separator.
  write("data.noun", header + "00001740 03 n 01 entity 0 000\n");
  expect_user_error([&] { io::read_wordnet(dir_.string()); }, noun + ":3: no gloss");
  // Bad hex word count.
  write("data.noun", header + "00001740 03 n zz entity 0 000 | x\n");
  expect_user_error([&] { io::read_wordnet(dir_.string()); }, noun + ":3: bad word count 'zz'");
  // Wrong synset type for the file.
  write("data.noun", header + "00001740 03 n 01 entity 0 000 | x\n");
  write("data.adj", header + "\n00014358 00 n 01 abounding 0 000 | x\n");
  expect_user_error([&] { io::read_wordnet(dir_.string()); }, adj + ":4: synset type 'n'");
}
