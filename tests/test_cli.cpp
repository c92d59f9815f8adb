// The shardtune executable on bad input: one clear line naming the file/field, exit code 2.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_helpers.h"
#include "launch/agree.h"
#include "train_helpers.h"

using namespace shardtune::testing;

namespace {

// Runs shardtune with `args`, capturing stderr only.
Result run(const std::string& args) {
  return capture(kShardtune + " " + args + " 2>&1 1>/dev/null");
}

int count_lines(const std::string& s) { return count(s, "\n"); }

std::string tiny_ini(const std::string& dir, const std::string& data_section) {
  return "[model]\nvocab_size = 260\nhidden_size = 32\nnum_layers = 1\nnum_heads = 2\n"
         "intermediate_size = 32\nmax_position_embeddings = 64\n"
         "[train]\nsteps = 2\nglobal_batch = 2\nmicro_batch = 1\nseq_len = 32\nout_dir = " +
         dir + "/run\n" + data_section;
}

void expect_user_error(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("shardtune: error"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "missing '" << needle << "' in: " << r.output;
}

}  // namespace

TEST(Cli, MissingConfigFile) {
  expect_user_error(run("train --config /nonexistent/x.ini"), "/nonexistent/x.ini: cannot open");
}

TEST(Cli, UnknownCommandAndOption) {
  const auto dir = temp_dir("cli_unknown");
  auto r = run("frobnicate");
  EXPECT_EQ(r.code, 2);
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[train]\nbogus = 1\n"));
  expect_user_error(run("train --config " + ini), "unknown option 'train.bogus'");
  const auto ok_ini = write_file(dir + "/ok.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  expect_user_error(run("train --config " + ok_ini + " --train.nope=3"), "unknown option 'train.nope'");
}

TEST(Cli, WrongType) {
  const auto dir = temp_dir("cli_type");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n") +
                                                  "[parallel]\nzero = abc\n");
  expect_user_error(run("train --config " + ini), "parallel.zero");
}

TEST(Cli, InvalidValueNamesTheField) {
  const auto dir = temp_dir("cli_value");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  expect_user_error(run("train --config " + ini + " --model.num_heads=3"), "[model] num_heads=3");
  expect_user_error(run("train --config " + ini + " --train.micro_batch=3"), "[train] micro_batch=3");
}

TEST(Cli, MissingDataFile) {
  const auto dir = temp_dir("cli_missing_data");
  const auto ini = write_file(dir + "/c.ini",
                              tiny_ini(dir, "[data]\ntrain_file = " + dir + "/none.jsonl\n"));
  expect_user_error(run("train --config " + ini), dir + "/none.jsonl: cannot open");
}

TEST(Cli, MalformedJsonlLineIsReportedWithFileAndLine) {
  const auto dir = temp_dir("cli_bad_jsonl");
  const auto data = write_file(dir + "/d.jsonl", "{\"text\": \"ok\"}\n{\"text\": oops}\n");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\ntrain_file = " + data + "\n"));
  expect_user_error(run("train --config " + ini), data + ":2:");
}

TEST(Cli, EmptyDataset) {
  const auto dir = temp_dir("cli_empty");
  const auto data = write_file(dir + "/d.jsonl", "\n\n");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\ntrain_file = " + data + "\n"));
  expect_user_error(run("train --config " + ini), "no records");
}

TEST(Cli, TrainSaveInspectEvalGenerate) {
  const auto dir = temp_dir("cli_roundtrip");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  auto r = run("train --config " + ini);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string ckpt = dir + "/run/checkpoints";
  const auto inspect = capture(kShardtune + " ckpt inspect " + ckpt);
  EXPECT_EQ(inspect.code, 0);
  const std::string& out = inspect.output;
  EXPECT_NE(out.find("step: 2"), std::string::npos) << out;
  EXPECT_NE(out.find("/model/model.layers.0.self_attn.q_proj.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("/optimizer/model.norm.weight/exp_avg_sq"), std::string::npos) << out;
  EXPECT_EQ(run("eval --config " + ini + " --checkpoint.init_from=" + ckpt).code, 0);
  EXPECT_EQ(run("generate --config " + ini + " --checkpoint.init_from=" + ckpt +
                " --generate.prompt=hello --generate.max_new_tokens=4").code, 0);
  // A checkpoint of another architecture is refused with the file named.
  expect_user_error(run("eval --config " + ini + " --model.hidden_size=64 --checkpoint.init_from=" + ckpt),
                    "model config differs");
  // A corrupted (truncated) checkpoint file.
  const auto file = dir + "/run/checkpoints/step-00000002.h5";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
  r = run("eval --config " + ini + " --checkpoint.init_from=" + file);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(file), std::string::npos) << r.output;
}

// ---- multi-rank failure behaviour (mpiexec launched from the test) -----------------------------

namespace {
// mpiexec with the flags a small CI machine needs; `apps` is one or more app contexts. The output
// is stderr only, unless `with_stdout` (a command's results, e.g. score's figures).
Result run_mpi(const std::string& apps, bool with_stdout = false) {
  return capture("timeout 120 " + mpiexec() + " " + apps +
                 (with_stdout ? " 2>&1" : " 2>&1 1>/dev/null"));
}
}  // namespace

TEST(Cli, ProgressIsOneLiveLineOnATerminalAndPlainLinesInALog) {
  const auto dir = temp_dir("cli_progress");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  const std::string train = kShardtune + " train --config " + ini +
                            " --train.steps=6 --train.log_every=3 --checkpoint.save_final=false";
  // A log (stdout is a pipe): the plain lines of steps 1, 3 and 6 only, no terminal controls.
  auto r = capture(train + " 2>&1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("\033[K"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 3/6 |"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("step 2/6 |"), std::string::npos) << r.output;
  // A terminal (script(1) gives the run a pseudo-terminal): steps 2, 4 and 5 rewrite one live
  // line, each logged line first erases it, so no step shares a line with another.
  r = capture("script -qec '" + train + "' /dev/null");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* live : {"\r\033[Kstep 2/6 |", "\r\033[Kstep 4/6 |", "\r\033[Kstep 5/6 |"}) {
    EXPECT_NE(r.output.find(live), std::string::npos) << "no live line '" << live + 4 << "'";
  }
  const auto step6 = r.output.find("step 6/6 |");
  ASSERT_NE(step6, std::string::npos) << r.output;
  const auto line_start = r.output.rfind('\n', step6);
  const auto erased = r.output.rfind("\r\033[K", step6);
  EXPECT_TRUE(erased != std::string::npos && (line_start == std::string::npos || erased > line_start))
      << "the logged line of step 6 does not start on an erased line";
  EXPECT_EQ(count(r.output, "step 5/6 |"), 1) << r.output;
}

TEST(CliMpi, BadFileOnOneRankEndsAllRanksWithOneMessage) {
  // Same config on both ranks (relative data path), different working directories: rank 1 reads a
  // malformed file.
  const auto dir = temp_dir("mpi_bad_file");
  std::filesystem::create_directories(dir + "/a");
  std::filesystem::create_directories(dir + "/b");
  write_file(dir + "/a/d.jsonl", "{\"text\": \"hello world\"}\n{\"text\": \"again\"}\n");
  write_file(dir + "/b/d.jsonl", "{\"text\": \"hello world\"}\n{\"text\": broken\n");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\ntrain_file = d.jsonl\n"));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_mpi("-np 1 --wdir " + dir + "/a " + kShardtune + " train --config " + ini + " : -np 1 --wdir " +
                   dir + "/b " + kShardtune + " train --config " + ini);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_EQ(count(r.output, "shardtune: error"), 1) << r.output;
  EXPECT_NE(r.output.find("on rank 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("d.jsonl:2:"), std::string::npos) << r.output;
  EXPECT_LT(s, 60.0);
}

TEST(CliMpi, ConfigMismatchBetweenRanksIsDetectedAtStart) {
  const auto dir = temp_dir("mpi_mismatch");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  auto r = run_mpi("-np 1 " + kShardtune + " train --config " + ini + " : -np 1 " + kShardtune +
                   " train --config " + ini + " --train.lr=0.5");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_EQ(count(r.output, "shardtune: error"), 1) << r.output;
  EXPECT_NE(r.output.find("configuration differs"), std::string::npos) << r.output;
}

TEST(Cli, GenerateCutsAPromptLongerThanThePositionsAndAnswersEveryPrompt) {
  // max_position_embeddings 64: a 100-byte prompt keeps its last 64 - 4 - 1 = 59 tokens (plus
  // BOS) and the short prompt beside it in the same batch is still answered.
  const auto dir = temp_dir("cli_generate_long");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  ASSERT_EQ(run("train --config " + ini).code, 0);
  const auto r = capture(kShardtune + " generate --config " + ini + " --checkpoint.init_from=" + dir +
                         "/run/checkpoints --generate.prompt=" + std::string(100, 'a') +
                         " --generate.prompt=hi --generate.max_new_tokens=4 2>&1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(count(r.output, "(prompt cut to its last 59 tokens"), 1) << r.output;
  EXPECT_EQ(count(r.output, "generated: "), 2) << r.output;
  EXPECT_NE(r.output.find("prompt:    hi\n"), std::string::npos) << r.output;
  // No room for any prompt: one error naming the option.
  expect_user_error(run("generate --config " + ini + " --checkpoint.init_from=" + dir +
                        "/run/checkpoints --generate.prompt=hi --generate.max_new_tokens=63"),
                    "[generate] max_new_tokens=63");
}

TEST(CliMpi, ExceptionDuringTrainingOnOneRankEndsTheJob) {
  const auto dir = temp_dir("mpi_throw");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_mpi("-np 1 " + kShardtune + " train --config " + ini + " : -np 1 -x SHARDTUNE_TEST_THROW_AT_STEP=2 " +
                   kHookedShardtune + " train --config " + ini);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.code, 124) << "timed out: a rank hung";
  EXPECT_NE(r.output.find("error on rank 1"), std::string::npos) << r.output;
  EXPECT_LT(s, 60.0);
}

TEST(CliMpi, TwoRankTrainingRuns) {
  const auto dir = temp_dir("mpi_train");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  auto r = run_mpi("-np 2 " + kShardtune + " train --config " + ini + " --parallel.zero=1");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/run/checkpoints/latest"));
}

TEST(CliMpi, DemoStagesRunOnTwoRanks) {
  // scripts/demo_run.sh's stages with mpirun -np 2, shortened: pretraining (DP=2), then the
  // category task with LoRA at TP=2 (the DP-trained checkpoint is sliced into TP shards), scored
  // and generated from at TP=2.
  const auto dir = temp_dir("mpi_demo");
  const std::string src = SHARDTUNE_SOURCE_DIR;
  const std::string common = " --train.steps=3 --train.warmup_steps=1 --data.max_eval_samples=16 --checkpoint.keep_last=1";
  auto r = run_mpi("-np 2 " + kShardtune + " train --config " + src + "/examples/wordnet/pretrain.ini" +
                   common + " --train.out_dir=" + dir + "/pre");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string lexname = " --config " + src + "/examples/wordnet/lexname.ini" + common +
                              " --parallel.tp=2 --strategy.name=lora --train.out_dir=" + dir + "/ft";
  r = run_mpi("-np 2 " + kShardtune + " train" + lexname + " --checkpoint.init_from=" + dir +
              "/pre/checkpoints");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_mpi("-np 2 " + kShardtune + " score" + lexname + " --checkpoint.init_from=" + dir +
                  "/ft/checkpoints",
              /*with_stdout=*/true);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("label_accuracy "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("majority_label adj.all"), std::string::npos) << r.output;
  r = run_mpi("-np 2 " + kShardtune + " generate" + lexname +
              " --generate.max_new_tokens=8 --checkpoint.init_from=" + dir + "/ft/checkpoints");
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST(CliMpi, PreprocessThenTrainEqualsTrainingFromJsonl) {
  // `shardtune preprocess` on 2 ranks, then training on the token datasets at TP=2: the same
  // losses, step by step and held out, as training on the JSONL itself.
  const auto dir = temp_dir("mpi_preprocess");
  std::string train, eval;
  for (int i = 0; i < 40; ++i) {
    const std::string k = std::to_string(i);
    train += i % 2 ? "{\"text\": \"line " + k + " of the corpus\"}\n"
                   : "{\"messages\": [{\"role\": \"user\", \"content\": \"q" + k +
                         "\"}, {\"role\": \"assistant\", \"content\": \"a" + k + "\"}]}\n";
    if (i < 6) eval += "{\"prompt\": \"p" + k + "\", \"response\": \"r" + k + "\"}\n";
  }
  write_file(dir + "/train.jsonl", train);
  write_file(dir + "/eval.jsonl", eval);
  const auto ini = write_file(
      dir + "/c.ini", tiny_ini(dir, "[data]\ntrain_file = " + dir + "/train.jsonl\neval_file = " +
                                        dir + "/eval.jsonl\ntokenized_dir = " + dir +
                                        "/tok\n") +
                          "[checkpoint]\nsave_final = false\n");
  auto r = run_mpi("-np 2 " + kShardtune + " preprocess --config " + ini);
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(std::filesystem::exists(dir + "/tok/train.h5"));
  ASSERT_TRUE(std::filesystem::exists(dir + "/tok/eval.h5"));
  const std::string common = " --config " + ini +
                             " --parallel.tp=2 --train.steps=4 --train.eval_every=2"
                             " --train.log_every=1";
  r = run_mpi("-np 2 " + kShardtune + " train" + common + " --train.out_dir=" + dir + "/jsonl");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_mpi("-np 2 " + kShardtune + " train" + common + " --train.out_dir=" + dir +
              "/tokenized --data.source=tokenized");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto want = losses(dir + "/jsonl/metrics.jsonl");
  ASSERT_EQ(want.size(), 4u);
  EXPECT_EQ(losses(dir + "/tokenized/metrics.jsonl"), want);
  const auto held_out = [](const std::string& metrics) {
    std::vector<std::string> out;
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      const auto at = line.find("\"eval_loss\":");
      if (at != std::string::npos) out.push_back(line.substr(at, line.find_first_of(",}", at) - at));
    }
    return out;
  };
  const auto want_eval = held_out(dir + "/jsonl/metrics.jsonl");
  EXPECT_GE(want_eval.size(), 2u);
  EXPECT_EQ(held_out(dir + "/tokenized/metrics.jsonl"), want_eval);
  // Another chat template than the datasets were made with: one line, every rank exits 2.
  r = run_mpi("-np 2 " + kShardtune + " train" + common + " --train.out_dir=" + dir +
              "/other --data.source=tokenized --data.chat_template=alpaca");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_EQ(count(r.output, "shardtune: error"), 1) << r.output;
  EXPECT_NE(r.output.find(dir + "/tok/train.h5: made with chat_template=none"), std::string::npos)
      << r.output;
}

TEST(CliMpi, TensorParallelLayoutErrorEndsAllRanksWithOneMessage) {
  const auto dir = temp_dir("mpi_tp_invalid");
  const auto ini = write_file(dir + "/c.ini", tiny_ini(dir, "[data]\nsource = synthetic\n"));
  auto r = run_mpi("-np 2 " + kShardtune + " train --config " + ini +
                   " --parallel.tp=2 --model.intermediate_size=65");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_EQ(count(r.output, "shardtune: error"), 1) << r.output;
  EXPECT_NE(r.output.find("[model] intermediate_size=65"), std::string::npos) << r.output;
}

// Error lines: one line whatever the message holds, LibTorch errors without their backtrace.

TEST(ErrorLine, ControlCharactersAreEscaped) {
  using shardtune::launch::one_line;
  EXPECT_EQ(one_line("a\nb\rc\td\x1b[2Je\x7f"), "a\\nb\\rc\\td\\x1b[2Je\\x7f");
  EXPECT_EQ(one_line("trailing newline\n"), "trailing newline");
  EXPECT_EQ(one_line("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 is kept
}

TEST(ErrorLine, LibTorchErrorsLoseTheirBacktrace) {
  try {
    torch::zeros({2, 3}).view({4});
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    const std::string line = shardtune::launch::message_of(e);
    EXPECT_EQ(line.find("Exception raised from"), std::string::npos) << line;
    EXPECT_EQ(line.find("frame #"), std::string::npos) << line;
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(line.rfind("internal error: ", 0), 0u) << line;
  }
  EXPECT_EQ(shardtune::launch::message_of(shardtune::UserError("bad\nvalue")), "bad\\nvalue");
  EXPECT_EQ(shardtune::launch::exit_code_of(shardtune::launch::NonFiniteError("x")), 3);
}
