// Tests for io/'s WordNet reader on the real Debian wordnet-base data: counts, known synsets, the
// train/eval split, record formats, and errors naming file and line.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/errors.h"
#include "io/dataset.h"
#include "io/wordnet.h"
#include "test_helpers.h"

namespace st = shardtune;
namespace io = shardtune::io;
namespace fs = std::filesystem;
using shardtune::testing::expect_user_error;

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
  // FNV-1a 64 of "n02084071" is 0x97d7d2d720a2877b (computed in Python), mod 100 = 3.
  io::Synset dog;
  dog.pos = 'n';
  dog.offset = 2084071;
  const int bucket = 3;
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

using WordNetErrors = shardtune::testing::TempDirTest;

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
