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

namespace {

// The message of the UserError that parsing + validating `args` throws ("" when none).
std::string config_error(const std::vector<std::string>& args) {
  const auto dir = temp_dir("config_ranges");
  try {
    launch::Config c = tiny_config(dir);
    std::string help;
    const auto file = write_file(dir + "/c.ini", c.to_ini());
    std::vector<std::string> all = {"--config", file};
    all.insert(all.end(), args.begin(), args.end());
    launch::Config parsed;
    launch::parse_config(all, parsed, help);
    parsed.validate(1);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, EveryNumericOptionIsRangeChecked) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--train.grad_clip=nan", "[train] grad_clip=nan must be a finite number"},
      {"--train.lr=inf", "[train] lr=inf must be a finite number"},
      {"--train.lr=0", "[train] lr=0 must be positive"},
      {"--train.min_lr=-1", "[train] min_lr=-1 must be in [0, "},
      {"--train.beta1=1", "[train] beta1=1 must be in [0, 1)"},
      {"--train.beta2=-0.1", "[train] beta2=-0.1 must be in [0, 1)"},
      {"--train.eps=0", "[train] eps=0 must be positive"},
      {"--train.weight_decay=-inf", "[train] weight_decay=-inf must be a finite number"},
      {"--train.steps=-3", "[train] steps=-3 must be >= 1"},
      {"--train.eval_every=-1", "[train] eval_every=-1 must be >= 0"},
      {"--train.warmup_steps=-1", "[train] warmup_steps=-1 must be in [0, "},
      {"--train.max_nonfinite_steps=0", "[train] max_nonfinite_steps=0 must be >= 1"},
      {"--train.on_nonfinite=ignore", "[train] on_nonfinite='ignore' is unknown"},
      {"--train.seed=-1", "[train] seed='-1' must be a whole number"},
      {"--train.seed=18446744073709551616", "[train] seed='18446744073709551616' must be"},
      {"--data.augment_seed=+3", "[data] augment_seed='+3' must be a whole number"},
      {"--model.rope_theta=0", "[model] rope_theta=0 must be positive"},
      {"--model.rope_theta=1", "[model] rope_theta=1 must be > 1"},
      {"--model.norm_eps=nan", "[model] norm_eps=nan must be a finite number"},
      {"--model.init_std=-0.02", "[model] init_std=-0.02 must be positive"},
      {"--model.dropout=1", "[model] dropout=1 must be in [0, 1)"},
      {"--data.max_eval_samples=-5", "[data] max_eval_samples=-5 must be >= 0"},
      {"--data.synthetic_samples=0", "[data] synthetic_samples=0 must be >= 1"},
      {"--data.augment_rate=nan", "[data] augment_rate=nan must be a finite number"},
      {"--checkpoint.every=-2", "[checkpoint] every=-2 must be >= 0"},
      {"--checkpoint.keep_last=-1", "[checkpoint] keep_last=-1 must be >= 0"},
      {"--parallel.bucket_mb=inf", "[parallel] bucket_mb=inf must be a finite number"},
      {"--generate.temperature=nan", "[generate] temperature=nan must be a finite number"},
      {"--generate.top_k=-1", "[generate] top_k=-1 must be >= 0"},
      {"--generate.max_new_tokens=0", "[generate] max_new_tokens=0 must be >= 1"},
  };
  for (const auto& [arg, expected] : cases) {
    const std::string message = config_error({arg});
    EXPECT_NE(message.find(expected), std::string::npos) << arg << " gave: " << message;
  }
  EXPECT_EQ(config_error({"--train.seed=18446744073709551615"}), "");  // the full range is valid
}

TEST(Config, MisspeltOrUnknownSectionsAreRefused) {
  EXPECT_NE(config_error({"--strategy.lroa.r=4"}).find("unknown section [strategy.lroa]"),
            std::string::npos);
  EXPECT_NE(config_error({"--trian.steps=4"}).find("unknown section [trian]"), std::string::npos);
  // A section for a known strategy that is not the chosen one is kept for when it is chosen.
  EXPECT_EQ(config_error({"--strategy.lora.r=4"}), "");
}

TEST(Config, ADirectoryOrFifoIsNotAConfigFile) {
  const auto dir = temp_dir("config_not_a_file");
  launch::Config c;
  std::string help;
  try {
    launch::parse_config({"--config", dir}, c, help);
    ADD_FAILURE() << "a directory was read as a config file";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file (a directory)"), std::string::npos)
        << e.what();
  }
}

TEST(Config, AHuggingFaceFolderBringsItsTokenizerUnlessAnotherIsNamed) {
  const auto dir = temp_dir("config_from_hf_tokenizer");
  write_file(dir + "/config.json",
             R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 320,
                 "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "max_position_embeddings": 64})");
  // No tokenizer files: the byte tokenizer stays the default.
  EXPECT_EQ(parse({"--model.from_hf=" + dir}).data.tokenizer, "byte");
  write_file(dir + "/tokenizer.json", "{}");
  EXPECT_EQ(parse({"--model.from_hf=" + dir}).data.tokenizer, dir);
  // A tokenizer named on the command line or in the file wins.
  EXPECT_EQ(parse({"--model.from_hf=" + dir, "--data.tokenizer=byte"}).data.tokenizer, "byte");
  const auto ini = write_file(dir + "/run.ini", "[data]\ntokenizer = none\n");
  EXPECT_EQ(parse({"--config", ini, "--model.from_hf=" + dir}).data.tokenizer, "none");
  EXPECT_EQ(parse({"--config", ini}).data.tokenizer, "none");
}
