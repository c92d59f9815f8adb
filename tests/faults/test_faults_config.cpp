// Fault cases: configuration. Every numeric option out of range, a misspelt section, a config
// path that is not a file: one error line naming the option, exit 2, within seconds, and the
// checkpoints of the run directory untouched (the run is refused before anything is written).
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "fault_fixtures.h"

using namespace shardtune::faults;

namespace {

// `shardtune train` on a seeded run with `overrides`; expects one error line with `expected`.
void expect_config_error(const std::string& name, std::vector<std::string> overrides,
                         const std::string& expected, const std::string& ini_extra = "") {
  const std::string dir = seeded_run(name);
  tiny_config(dir, ini_extra);
  FaultCase c = train_case(dir, std::move(overrides));
  c.expect_code = 2;
  c.expect_error = expected;
  expect_fault(c);
}

}  // namespace

TEST(FaultConfig, GradClipNan) {
  expect_config_error("cfg_grad_clip_nan", {"--train.grad_clip=nan"},
                      "[train] grad_clip=nan must be a finite number");
}

TEST(FaultConfig, LrInfinite) {
  expect_config_error("cfg_lr_inf", {"--train.lr=inf"}, "[train] lr=inf must be a finite number");
}

TEST(FaultConfig, Beta1One) {
  expect_config_error("cfg_beta1", {"--train.beta1=1"}, "[train] beta1=1 must be in [0, 1)");
}

TEST(FaultConfig, RopeThetaZero) {
  expect_config_error("cfg_rope_theta", {"--model.rope_theta=0"},
                      "[model] rope_theta=0 must be positive");
}

TEST(FaultConfig, LoraAlphaNan) {
  expect_config_error("cfg_lora_alpha", {"--strategy.name=lora", "--strategy.lora.alpha=nan"},
                      "[strategy.lora] alpha='nan' is not a finite number");
}

TEST(FaultConfig, NegativeSteps) {
  expect_config_error("cfg_steps", {"--train.steps=-3"}, "[train] steps=-3 must be >= 1");
}

TEST(FaultConfig, NegativeSeedIsNotWrapped) {
  expect_config_error("cfg_seed", {"--train.seed=-1"}, "[train] seed='-1' must be a whole number");
}

TEST(FaultConfig, NegativeKeepLast) {
  expect_config_error("cfg_keep_last", {"--checkpoint.keep_last=-1"},
                      "[checkpoint] keep_last=-1 must be >= 0");
}

TEST(FaultConfig, NegativeEvalSamples) {
  expect_config_error("cfg_eval_samples", {"--data.max_eval_samples=-5"},
                      "[data] max_eval_samples=-5 must be >= 0");
}

TEST(FaultConfig, ZeroBucket) {
  expect_config_error("cfg_bucket", {"--parallel.bucket_mb=0"},
                      "[parallel] bucket_mb=0 must be in [0.001, 65536]");
}

TEST(FaultConfig, DropoutNan) {
  expect_config_error("cfg_dropout", {"--model.dropout=nan"},
                      "[model] dropout=nan must be a finite number");
}

TEST(FaultConfig, NegativeTemperature) {
  expect_config_error("cfg_temperature", {"--generate.temperature=-1"},
                      "[generate] temperature=-1 must be >= 0");
}

TEST(FaultConfig, UnknownNonfinitePolicy) {
  expect_config_error("cfg_on_nonfinite", {"--train.on_nonfinite=ignore"},
                      "[train] on_nonfinite='ignore' is unknown (known: stop, skip)");
}

TEST(FaultConfig, IntegerOverflow) {
  expect_config_error("cfg_overflow", {"--train.steps=99999999999999999999"}, "train.steps");
}

TEST(FaultConfig, MisspeltStrategySection) {
  expect_config_error("cfg_strategy_section", {}, "unknown section [strategy.lroa]",
                      "[strategy]\nname = lora\n[strategy.lroa]\nr = 4\n");
}

TEST(FaultConfig, UnknownSection) {
  expect_config_error("cfg_section", {}, "unknown section [trian]", "[trian]\nsteps = 9\n");
}

TEST(FaultConfig, ControlCharactersCannotForgeALine) {
  // A value with a newline and an escape sequence: the message quotes it on one line.
  expect_config_error("cfg_newline", {"--model.family=x\nshardtune: error: forged\x1b[2J"},
                      "[model] family='x\\nshardtune: error: forged\\x1b[2J' is unknown");
}

TEST(FaultConfig, DirectoryAsConfig) {
  const std::string dir = seeded_run("cfg_dir_as_config");
  FaultCase c;
  c.args = {"train", "--config", dir + "/run"};
  c.expect_error = "config file is not a regular file (a directory)";
  c.watch = {dir + "/run"};
  expect_fault(c);
}

TEST(FaultConfig, FifoAsConfig) {
  const std::string dir = seeded_run("cfg_fifo");
  ASSERT_EQ(::mkfifo((dir + "/fifo.ini").c_str(), 0600), 0);
  FaultCase c;
  c.args = {"train", "--config", dir + "/fifo.ini"};
  c.expect_error = "config file is not a regular file";
  c.watch = {dir + "/run"};
  expect_fault(c);
}

TEST(FaultConfig, SymlinkLoopAsConfig) {
  const std::string dir = seeded_run("cfg_symlink_loop");
  fs::create_symlink(dir + "/b.ini", dir + "/a.ini");
  fs::create_symlink(dir + "/a.ini", dir + "/b.ini");
  FaultCase c;
  c.args = {"train", "--config", dir + "/a.ini"};
  c.expect_error = "a.ini: cannot open config file";
  c.watch = {dir + "/run"};
  expect_fault(c);
}
