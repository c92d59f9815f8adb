// The WordNet lexname task (io/wordnet.h, [data] wordnet_task=lexname): each synset's
// lexicographer category from its gloss, the classification the demo scores. Real Debian
// wordnet-base data, plus a malformed category number.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "io/wordnet.h"
#include "test_helpers.h"

using namespace shardtune;
using shardtune::testing::expect_user_error;

namespace {
const std::vector<io::Synset>& wordnet() {
  static const std::vector<io::Synset> synsets = io::read_wordnet(io::kDefaultWordNetDir);
  return synsets;
}
}  // namespace

// lexnames(5): numbers 00..44; each part of speech uses only its own files.
TEST(Lexname, EveryCategoryBelongsToItsPartOfSpeech) {
  const std::map<char, std::string> prefix = {
      {'n', "noun."}, {'v', "verb."}, {'a', "adj."}, {'s', "adj."}, {'r', "adv."}};
  std::set<int> used;
  for (const auto& s : wordnet()) {
    const std::string& name = io::lexname(s.lex_filenum);
    ASSERT_EQ(name.rfind(prefix.at(s.pos), 0), 0u) << s.offset << " " << name;
    used.insert(s.lex_filenum);
  }
  EXPECT_EQ(used.size(), 45u);  // WordNet 3.0 uses every file
  EXPECT_EQ(io::lexname(0), "adj.all");
  EXPECT_EQ(io::lexname(6), "noun.artifact");
  EXPECT_EQ(io::lexname(44), "adj.ppl");
  expect_user_error([] { io::lexname(45); }, "outside 0..44");
  expect_user_error([] { io::lexname(-1); }, "outside 0..44");
}

TEST(Lexname, KnownSynsets) {
  std::map<std::string, std::string> found;  // first lemma -> category, for a few known ones
  for (const auto& s : wordnet()) {
    if (s.pos == 'n' && s.offset == 2084071) found["dog"] = io::lexname(s.lex_filenum);
    if (s.pos == 'n' && s.offset == 1740) found["entity"] = io::lexname(s.lex_filenum);
  }
  EXPECT_EQ(found["dog"], "noun.animal");
  EXPECT_EQ(found["entity"], "noun.Tops");
}

// Records: "WORD: definition\ncategory: " -> category; same split as the other tasks (held-out
// synsets never trained on); ordered by the split's hash, so a prefix is a fair sample rather than
// the two or three categories the data files begin with.
TEST(Lexname, RecordsFollowTheSplitAndAPrefixIsAFairSample) {
  const auto train = io::wordnet_records(wordnet(), io::WordNetTask::kLexname, io::Split::kTrain, 5);
  const auto eval = io::wordnet_records(wordnet(), io::WordNetTask::kLexname, io::Split::kEval, 5);
  const auto gloss_eval =
      io::wordnet_records(wordnet(), io::WordNetTask::kGlosses, io::Split::kEval, 5);
  EXPECT_EQ(train.size() + eval.size(), wordnet().size());
  EXPECT_EQ(eval.size(), gloss_eval.size());
  std::set<std::string> eval_texts;
  for (const auto& r : gloss_eval) eval_texts.insert(r.response);
  for (const auto& r : eval) {
    const std::string suffix = "\ncategory: ";
    ASSERT_GT(r.prompt.size(), suffix.size());
    ASSERT_EQ(r.prompt.substr(r.prompt.size() - suffix.size()), suffix);
    // The same held-out synsets as the gloss task: its text is a held-out gloss.
    ASSERT_TRUE(eval_texts.count(r.prompt.substr(0, r.prompt.size() - suffix.size())))
        << r.prompt;
  }
  std::set<std::string> first_categories;
  for (size_t i = 0; i < 256 && i < eval.size(); ++i) first_categories.insert(eval[i].response);
  EXPECT_GE(first_categories.size(), 25u);
  // Deterministic.
  const auto again = io::wordnet_records(wordnet(), io::WordNetTask::kLexname, io::Split::kEval, 5);
  ASSERT_EQ(again.size(), eval.size());
  for (size_t i = 0; i < eval.size(); ++i) ASSERT_EQ(again[i].prompt, eval[i].prompt);
}

// The part-of-speech task: the four classes equally often on each side of the split (as many as
// the adverbs have), held-out records are held-out glosses, and a prefix mixes all four.
TEST(Lexname, PartOfSpeechRecordsAreBalancedAndFollowTheSplit) {
  const auto count_adverbs = [](io::Split split) {
    size_t n = 0;
    for (const auto& s : wordnet()) n += s.pos == 'r' && io::synset_split(s, 5) == split;
    return n;
  };
  const auto gloss_eval =
      io::wordnet_records(wordnet(), io::WordNetTask::kGlosses, io::Split::kEval, 5);
  std::set<std::string> eval_texts;
  for (const auto& r : gloss_eval) eval_texts.insert(r.response);
  for (const auto split : {io::Split::kTrain, io::Split::kEval}) {
    const auto records = io::wordnet_records(wordnet(), io::WordNetTask::kPos, split, 5);
    std::map<std::string, size_t> per_label;
    const std::string suffix = "\npart of speech: ";
    for (const auto& r : records) {
      ++per_label[r.response];
      ASSERT_GT(r.prompt.size(), suffix.size());
      ASSERT_EQ(r.prompt.substr(r.prompt.size() - suffix.size()), suffix);
      if (split == io::Split::kEval) {
        ASSERT_TRUE(eval_texts.count(r.prompt.substr(0, r.prompt.size() - suffix.size())));
      }
    }
    const size_t adverbs = count_adverbs(split);
    EXPECT_GT(adverbs, 100u);
    EXPECT_EQ(per_label, (std::map<std::string, size_t>{
                             {"adjective", adverbs}, {"adverb", adverbs}, {"noun", adverbs},
                             {"verb", adverbs}}));
    std::set<std::string> first;
    for (size_t i = 0; i < 16 && i < records.size(); ++i) first.insert(records[i].response);
    EXPECT_EQ(first.size(), 4u);
  }
}

using LexnameErrors = shardtune::testing::TempDirTest;

TEST_F(LexnameErrors, BadCategoryNumberNamesFileAndLine) {
  const std::string header = "  1 license\n";
  write("data.verb", header + "00001740 29 v 01 breathe 0 000 02 + 02 00 + 08 00 | draw air\n");
  write("data.adj", header + "00014358 00 s 02 abounding 0 galore(ip) 0 000 | plentiful\n");
  write("data.adv", header + "00001740 02 r 01 a_cappella 0 000 | without accompaniment\n");
  const std::string noun = (dir_ / "data.noun").string();
  for (const char* bad : {"45", "7", "x3", "003"}) {
    write("data.noun", header + "00001740 " + bad + " n 01 entity 0 000 | that which is\n");
    expect_user_error([&] { io::read_wordnet(dir_.string()); },
                      noun + ":2: bad lexicographer file number");
  }
}
