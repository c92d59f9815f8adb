// Data-side options of the strategies: multi-turn SFT masking, WordNet augmentation (deterministic
// per seed, training data only), and self-training's pseudo-label filter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "io/augment.h"
#include "io/data.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "io/wordnet.h"
#include "strategies/sft.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

TEST(MultiTurn, EveryNonAssistantTurnIsMasked) {
  const auto dir = temp_dir("multi_turn");
  const auto file = write_file(
      dir + "/chat.jsonl",
      R"({"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"},)"
      R"({"role":"assistant","content":"hello"},{"role":"user","content":"bye"},)"
      R"({"role":"assistant","content":"ciao"}]})"
      "\n");
  const auto records = io::read_jsonl(file);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].prompt, "system: Be brief.\nuser: hi\nassistant: hello\nuser: bye\nassistant: ");
  EXPECT_EQ(records[0].response, "ciao");
  auto tok = io::make_tokenizer("byte", "test");
  const auto e = io::tokenize(records[0], *tok, 256, false);
  // The trained positions spell exactly the assistant turns (with their newlines) and EOS.
  std::string trained;
  int64_t eos = 0;
  for (size_t i = 0; i < e.labels.size(); ++i) {
    if (e.labels[i] == core::kIgnoreIndex) continue;
    if (e.labels[i] == tok->eos_id()) {
      ++eos;
    } else {
      trained += tok->decode({e.labels[i]});
    }
  }
  EXPECT_EQ(trained, "hello\nciao\n");
  EXPECT_EQ(eos, 1);
  EXPECT_EQ(e.tokens.front(), tok->bos_id());
  EXPECT_EQ(e.tokens.back(), tok->eos_id());
  EXPECT_EQ(tok->decode(std::vector<int64_t>(e.tokens.begin() + 1, e.tokens.end() - 1)),
            "system: Be brief.\nuser: hi\nassistant: hello\nuser: bye\nassistant: ciao\n");
  // train_on_prompt: everything but BOS.
  const auto all = io::tokenize(records[0], *tok, 256, true);
  EXPECT_EQ(all.labels[0], core::kIgnoreIndex);
  for (size_t i = 1; i < all.labels.size(); ++i) EXPECT_EQ(all.labels[i], all.tokens[i]);
}

TEST(MultiTurn, BadMessagesAreNamed) {
  const auto dir = temp_dir("multi_turn_bad");
  auto expect_error = [&](const std::string& line, const std::string& text) {
    const auto file = write_file(dir + "/bad.jsonl", line + "\n");
    expect_user_error([&] { io::read_jsonl(file); }, {text, "bad.jsonl:1"});
  };
  expect_error(R"({"messages":[{"role":"user","content":"hi"}]})", "no assistant turn");
  expect_error(R"({"messages":[{"role":"bot","content":"hi"}]})", "role 'bot' is unknown");
  expect_error(R"({"messages":[{"role":"user"}]})", "messages[0]: must be an object");
  expect_error(R"({"messages":[]})", "non-empty array");
}

namespace {
const std::vector<io::Synset>& wordnet() {
  static const auto synsets = io::read_wordnet(io::kDefaultWordNetDir);
  return synsets;
}
}  // namespace

TEST(Augment, DeterministicPerSeedAndUsesWordNetSynonyms) {
  auto options = io::parse_augment("synonym,reorder", 0.5, 11, 1);
  const io::Augmenter a(wordnet(), options), b(wordnet(), options);
  options.seed = 12;
  const io::Augmenter other(wordnet(), options);
  const std::string text = "a large dog ran quickly; the car stopped. people watched the big house.";
  const auto x = a.augment(text, 3);
  EXPECT_EQ(x, b.augment(text, 3));          // same seed, same output
  EXPECT_NE(x, text);                        // rate 0.5 changes something here
  EXPECT_NE(other.augment(text, 3), x);      // another seed, another output
  EXPECT_NE(a.augment(text, 4), x);          // another stream (record), another output
  ASSERT_NE(a.synonyms("car"), nullptr);
  const auto& cars = *a.synonyms("car");
  EXPECT_NE(std::find(cars.begin(), cars.end(), "automobile"), cars.end());
  // Every replaced word is a WordNet synonym of the original (the text has no reorder here).
  const auto syn_only = io::Augmenter(wordnet(), io::parse_augment("synonym", 1.0, 5, 1));
  const auto replaced = syn_only.augment("car house dog", 0);
  std::istringstream words(replaced);
  std::string w;
  for (const std::string original : {"car", "house", "dog"}) {
    words >> w;
    const auto* list = syn_only.synonyms(original);
    ASSERT_NE(list, nullptr);
    EXPECT_NE(std::find(list->begin(), list->end(), w), list->end()) << original << " -> " << w;
  }
  // Reorder permutes sentences and keeps every word.
  const auto re = io::Augmenter(wordnet(), io::parse_augment("reorder", 1.0, 2, 1));
  std::string shuffled;
  for (uint64_t s = 0; s < 8 && shuffled.empty(); ++s) {
    const auto r = re.augment("one two. three four. five six.", s);
    if (r != "one two. three four. five six.") shuffled = r;
  }
  ASSERT_FALSE(shuffled.empty());
  for (const std::string part : {"one two.", "three four.", "five six."}) {
    EXPECT_NE(shuffled.find(part), std::string::npos) << shuffled;
  }
  try {
    io::parse_augment("synonym,backtranslate", 0.1, 0, 1);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("'backtranslate' is unknown"), std::string::npos);
  }
}

TEST(Augment, TrainingDataOnlyAndReproducible) {
  const auto dir = temp_dir("augment_data");
  auto c = tiny_config(dir);
  std::string train, eval;
  const auto records = io::wordnet_records(wordnet(), io::WordNetTask::kGlosses, io::Split::kTrain, 5);
  for (size_t i = 0; i < 200; ++i) {
    (i < 160 ? train : eval) += nlohmann::json{{"text", records[i * 37].response}}.dump() + "\n";
  }
  c.data.source = "jsonl";
  c.data.train_file = write_file(dir + "/train.jsonl", train);
  c.data.eval_file = write_file(dir + "/eval.jsonl", eval);
  auto tok = io::make_tokenizer("byte", "test");
  const auto load = [&] {
    return io::load_datasets(c.data, c.train.seq_len, *tok, c.model.vocab_size, c.train.seed);
  };
  const auto plain = load();
  c.data.augment = "synonym,reorder";
  c.data.augment_rate = 0.3;
  c.data.augment_seed = 4;
  const auto aug1 = load();
  const auto aug2 = load();
  EXPECT_GT(aug1.train.size(), plain.train.size() + plain.train.size() / 2);
  ASSERT_EQ(aug1.train.size(), aug2.train.size());
  for (size_t i = 0; i < aug1.train.size(); ++i) {
    ASSERT_EQ(aug1.train[i].tokens, aug2.train[i].tokens) << i;
  }
  ASSERT_EQ(aug1.eval.size(), plain.eval.size());
  for (size_t i = 0; i < plain.eval.size(); ++i) EXPECT_EQ(aug1.eval[i].tokens, plain.eval[i].tokens);
}

// The starting model labels prompts; the filter keeps exactly those at or above the threshold,
// and they join the training set of the sft run.
TEST(SelfTraining, PseudoLabelsPassTheFilterAndAreUsed) {
  const auto dir = temp_dir("self_training");
  auto base = tiny_config(dir + "/base");
  base.data.source = "wordnet";
  base.data.wordnet_task = "define";
  base.data.max_eval_samples = 16;
  base.train.steps = 30;
  base.train.seq_len = 64;
  base.train.lr = 1e-2;
  base.checkpoint.save_final = true;
  auto grid = local_grid();
  { launch::Trainer(base, grid).train(); }
  std::string prompts;
  for (const std::string w : {"dog", "river", "run", "happy", "stone", "teacher", "quickly", "bread"}) {
    prompts += R"({"prompt": "define: )" + w + R"(\n", "response": ""})" "\n";
  }
  const auto prompt_file = write_file(dir + "/prompts.jsonl", prompts);

  auto c = base;
  c.train.out_dir = dir + "/st";
  c.checkpoint.save_final = false;
  c.checkpoint.init_from = base.checkpoint_dir();
  c.train.steps = 2;
  // First score them all with a threshold nothing passes, to pick one in the middle.
  c.strategy_options = {{"self_training_prompts", prompt_file},
                        {"self_training_threshold", "0"},
                        {"self_training_max_new_tokens", "24"}};
  std::vector<strategies::PseudoLabel> all;
  size_t gold = 0;
  {
    launch::Trainer t(c, grid);
    gold = t.data().train.size();
    auto tok = io::make_tokenizer("byte", "test");
    strategies::SelfTrainingOptions o;
    o.threshold = 0.0;
    o.max_new_tokens = 24;
    std::vector<std::string> ps;
    for (const auto& r : io::read_jsonl(prompt_file)) ps.push_back(r.prompt);
    io::DataSets unused;
    const io::StrategyData data(unused, c.data, *tok, c.train.seq_len, [](const std::string&) {});
    all = strategies::pseudo_label(t.model(), data, ps, o);
  }
  ASSERT_EQ(all.size(), 8u);
  std::vector<double> scores;
  for (const auto& l : all) {
    EXPECT_FALSE(l.accepted);  // log-probs are negative
    EXPECT_LT(l.mean_logprob, 0.0);
    if (!l.response.empty()) scores.push_back(l.mean_logprob);
  }
  ASSERT_GE(scores.size(), 2u);
  std::sort(scores.begin(), scores.end());
  // Halfway between two scores: the upper half passes.
  const size_t mid = scores.size() / 2;
  char text[64];
  std::snprintf(text, sizeof(text), "%.17g", 0.5 * (scores[mid - 1] + scores[mid]));
  const double threshold = std::strtod(text, nullptr);
  c.strategy_options["self_training_threshold"] = text;
  launch::Trainer t(c, grid);
  size_t accepted = 0;
  for (const auto& l : all) accepted += !l.response.empty() && l.mean_logprob >= threshold;
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, all.size());
  // Used: the accepted pseudo-labels are in the training set, after the gold data.
  ASSERT_EQ(t.data().train.size(), gold + accepted);
  auto tok = io::make_tokenizer("byte", "test");
  size_t k = gold;
  for (const auto& l : all) {
    if (l.response.empty() || l.mean_logprob < threshold) continue;
    const io::Record record{l.prompt, l.response};
    EXPECT_EQ(t.data().train[k++].tokens,
              io::tokenize(record, *tok, c.train.seq_len, false).tokens);
  }
  t.train();  // and training runs on them
}
