// The configuration (launch/config.h): one field list per section generates the command-line
// table, the resolved printout, the INI round trip and the hash ranks compare.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "launch/config.h"
#include "train_helpers.h"

using namespace shardtune;
using namespace shardtune::testing;

namespace {

// Collects "section.key" of every option, as the field lists name them.
struct KeyLister {
  std::vector<std::string> keys;
  std::string current;
  void section(const char* name, const char*) { current = name; }
  template <typename T>
  void operator()(const char* key, const T&, const char* doc) {
    keys.push_back(current + "." + key);
    EXPECT_GT(std::string(doc).size(), 2u) << keys.back() << " has no doc line";
  }
  void free_options(const std::string&, const core::StrategyOptions&) {}
};

launch::Config unusual(const std::string& dir) {
  auto c = tiny_config(dir);
  c.model.rope_theta = 500000.0;
  c.model.norm_eps = 1.2345678e-6;  // needs more than %g's 6 digits to read back
  c.train.lr = 0.0012345678901;
  c.train.seed = 18446744073709551557ULL;
  c.data.augment_rate = 0.25;
  c.strategy = "lora";
  c.strategy_options = {{"r", "4"}, {"target_modules", "q_proj, v_proj"}};
  c.checkpoint.transfer = "collective";
  c.parallel.bucket_mb = 0.5;
  c.generate.prompts = {"define: harbor", "a second prompt"};
  c.generate.temperature = 0.7;
  return c;
}

launch::Config parse(const std::vector<std::string>& args) {
  launch::Config c;
  std::string help;
  EXPECT_TRUE(launch::parse_config(args, c, help));
  return c;
}

}  // namespace

TEST(Config, EveryOptionIsListedOnceWithADocLine) {
  KeyLister lister;
  launch::Config c;
  c.sections(lister);
  std::set<std::string> unique(lister.keys.begin(), lister.keys.end());
  EXPECT_EQ(unique.size(), lister.keys.size());
  for (const char* key : {"model.init_std", "train.out_dir", "data.augment_copies", "strategy.name",
                          "checkpoint.transfer", "parallel.bucket_mb", "generate.prompt"}) {
    EXPECT_TRUE(unique.count(key)) << key;
  }
  // The --help table is generated from the same lists.
  std::string help;
  EXPECT_FALSE(launch::parse_config({"--help"}, c, help));
  for (const auto& key : lister.keys) EXPECT_NE(help.find("--" + key), std::string::npos) << key;
}

TEST(Config, IniRoundTripIsExact) {
  const auto dir = temp_dir("config_roundtrip");
  for (const auto& c : {tiny_config(dir), unusual(dir)}) {
    const std::string ini = c.to_ini();
    const auto file = write_file(dir + "/resolved.ini", ini);
    const auto back = parse({"--config", file});
    EXPECT_EQ(back.to_ini(), ini);
    EXPECT_EQ(back.hash(), c.hash());
    EXPECT_EQ(back.train.lr, c.train.lr);
    EXPECT_EQ(back.model.norm_eps, c.model.norm_eps);
    EXPECT_EQ(back.train.seed, c.train.seed);
    EXPECT_EQ(back.strategy_options, c.strategy_options);
    EXPECT_EQ(back.generate.prompts, c.generate.prompts);
    EXPECT_EQ(back.checkpoint.dir, c.checkpoint_dir());  // printed resolved
  }
}

TEST(Config, PrintoutHasEverySectionAndResolvesTheCheckpointDir) {
  const auto dir = temp_dir("config_printout");
  const std::string ini = "\n" + unusual(dir).to_ini();
  for (const char* section : {"[model]", "[train]", "[data]", "[strategy]", "[strategy.lora]",
                              "[checkpoint]", "[parallel]", "[generate]"}) {
    EXPECT_NE(ini.find(std::string("\n") + section + "\n"), std::string::npos) << section;
  }
  EXPECT_NE(ini.find("dir = " + dir + "/checkpoints\n"), std::string::npos) << ini;
  EXPECT_NE(ini.find("prompt = define: harbor\nprompt = a second prompt\n"), std::string::npos);
  EXPECT_NE(ini.find("lr = 0.0012345678901\n"), std::string::npos) << ini;
  EXPECT_NE(ini.find("rope_theta = 500000\n"), std::string::npos) << ini;  // %g where it suffices
}

TEST(Config, HashCoversEverySectionIncludingGenerate) {
  const auto dir = temp_dir("config_hash");
  const auto base = unusual(dir);
  auto other = base;
  EXPECT_EQ(other.hash(), base.hash());
  other.generate.prompts[1] = "another prompt";
  EXPECT_NE(other.hash(), base.hash());
  other = base;
  other.generate.top_k = 5;
  EXPECT_NE(other.hash(), base.hash());
  other = base;
  other.strategy_options["r"] = "8";
  EXPECT_NE(other.hash(), base.hash());
  other = base;
  other.model.dropout = 0.1;
  EXPECT_NE(other.hash(), base.hash());
}

TEST(Config, CommandLineOverridesTheFileAndUnknownKeysAreRefused) {
  const auto dir = temp_dir("config_override");
  const auto file = write_file(dir + "/c.ini",
                               "[train]\nsteps = 7\nlr = 0.5\n[strategy]\nname = lora\n"
                               "[strategy.lora]\nr = 2\n");
  const auto c = parse({"--config", file, "--train.lr=0.25", "--strategy.lora.r=3", "--resume",
                        "auto"});
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_EQ(c.train.lr, 0.25);
  EXPECT_EQ(c.strategy_options.at("r"), "3");
  EXPECT_EQ(c.checkpoint.resume, "auto");
  launch::Config bad;
  std::string help;
  EXPECT_THROW(launch::parse_config({"--train.nope=1"}, bad, help), UserError);
  EXPECT_THROW(parse({"--checkpoint.transfer=sometimes"}).validate(1), UserError);
}
