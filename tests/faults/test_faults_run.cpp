// Fault cases: rank layouts, a rank failing mid-training, non-finite training, signals. A job
// on several ranks ends with one line from one rank, through MPI_Finalize (no MPI_ABORT banner);
// a non-finite step is never saved; a stopped job exits kStoppedExitCode (75) and resumes.
#include <signal.h>

#include <gtest/gtest.h>

#include "fault_fixtures.h"

using namespace shardtune::faults;

namespace {

// A seeded run continued with --resume auto to `steps` steps, checkpointing every 2.
FaultCase resumed_case(const std::string& dir, int steps, std::vector<std::string> extra = {}) {
  auto c = train_case(dir, {"--resume", "auto", "--train.steps=" + std::to_string(steps)});
  c.args.insert(c.args.end(), extra.begin(), extra.end());
  c.hooked = true;
  // The continued run moves `latest` and logs its steps; the checkpoints it found must survive.
  c.may_change = {"latest", "metrics.jsonl"};
  return c;
}

}  // namespace

// --- rank layouts ---

TEST(FaultLayout, TensorParallelDoesNotDivideTheWorld) {
  const std::string dir = seeded_run("layout_tp_world");
  auto c = train_case(dir, {"--parallel.tp=2"});
  c.np = 3;
  c.expect_error = "[parallel] tp=2 does not divide the world size 3";
  expect_fault(c);
}

TEST(FaultLayout, BatchNotDivisibleByDataParallel) {
  const std::string dir = seeded_run("layout_batch");
  auto c = train_case(dir, {"--train.global_batch=3"});
  c.np = 2;
  c.expect_error = "[train] global_batch=3 is not divisible by the data-parallel size 2";
  expect_fault(c);
}

TEST(FaultLayout, ShapeNotDivisibleByTensorParallel) {
  const std::string dir = seeded_run("layout_tp_shape");
  auto c = train_case(dir, {"--parallel.tp=2", "--model.intermediate_size=65"});
  c.np = 2;
  c.expect_error = "[model] intermediate_size=65";
  expect_fault(c);
}

TEST(FaultLayout, FourRanksOneFailsToReadData) {
  const std::string dir = seeded_run("layout_four_missing");
  auto c = train_case(dir, {"--data.source=jsonl", "--data.train_file=" + dir + "/none.jsonl"});
  c.np = 4;
  c.expect_error = "error on rank 0: " + dir + "/none.jsonl: cannot open";
  expect_fault(c);
}

TEST(FaultLayout, RankFailingMidTrainingEndsTheJobCleanly) {
  // Rank 0 throws before step 3 (outside the step's collectives): every rank agrees at the step
  // boundary and leaves through MPI_Finalize with one line and no MPI_ABORT banner.
  const std::string dir = seeded_run("layout_throw");
  auto c = resumed_case(dir, 8);
  c.np = 2;
  c.env = {{"SHARDTUNE_TEST_THROW_AT_STEP", "6"}};
  c.expect_code = 1;
  c.expect_error = "error on rank 0: internal error: test hook SHARDTUNE_TEST_THROW_AT_STEP=6";
  expect_fault(c);
}

TEST(FaultLayout, RankFaultingWhileReadingEndsEveryRank) {
  // Rank 1 gets SIGBUS while it reads the checkpoint it resumes from (a file damaged or changed
  // under the reader, or crafted to crash libhdf5, docs/reliability.md): the fault report prints
  // one line naming the file and exits 2, and mpirun ends rank 0, which waits in set-up's
  // agreement. Nothing is written.
  const std::string dir = seeded_run("layout_fault_reading");
  auto c = resumed_case(dir, 8);
  c.np = 2;
  const std::string ckpt = dir + "/run/checkpoints/step-00000004.h5";
  c.env = {{"SHARDTUNE_TEST_FAULT_READING", ckpt}, {"SHARDTUNE_TEST_FAULT_RANK", "1"}};
  c.expect_error = "shardtune: error: SIGBUS while reading " + ckpt +
                   ": the file is damaged, crafted, or was changed while it was being read";
  c.max_seconds = 30;
  expect_fault(c);
  EXPECT_EQ(latest_of(dir + "/run/checkpoints"), "step-00000004.h5");
}

// --- non-finite training ---

TEST(FaultNonfinite, StopNamesTheStepAndKeepsLatest) {
  const std::string dir = seeded_run("nonfinite_stop");
  const std::string before = latest_of(dir + "/run/checkpoints");
  auto c = resumed_case(dir, 12);
  c.env = {{"SHARDTUNE_TEST_NAN_AT_STEP", "7"}};
  c.expect_code = 3;
  c.expect_error = "[train] on_nonfinite=stop: the loss (";
  const Outcome o = expect_fault(c);
  EXPECT_NE(o.err.find("is not finite at step 7"), std::string::npos) << o.err;
  // Step 6's checkpoint was the last good one: it is `latest`, and nothing after it was written.
  EXPECT_EQ(before, "step-00000004.h5");
  EXPECT_EQ(latest_of(dir + "/run/checkpoints"), "step-00000006.h5");
  EXPECT_FALSE(fs::exists(dir + "/run/checkpoints/step-00000008.h5"));
}

TEST(FaultNonfinite, StopAgreedOnTwoRanksWhenOneRankDiverges) {
  const std::string dir = seeded_run("nonfinite_two_ranks");
  auto c = resumed_case(dir, 10);
  c.np = 2;
  c.env = {{"SHARDTUNE_TEST_NAN_AT_STEP", "5"}, {"SHARDTUNE_TEST_NAN_RANK", "1"}};
  c.expect_code = 3;
  c.expect_error = "is not finite at step 5";
  expect_fault(c);
}

TEST(FaultNonfinite, StopUnderZeroOnTwoRanks) {
  const std::string dir = seeded_run("nonfinite_zero");
  auto c = resumed_case(dir, 10, {"--parallel.zero=1"});
  c.np = 2;
  c.env = {{"SHARDTUNE_TEST_NAN_AT_STEP", "6"}, {"SHARDTUNE_TEST_NAN_RANK", "0"}};
  c.expect_code = 3;
  c.expect_error = "is not finite at step 6";
  expect_fault(c);
}

TEST(FaultNonfinite, SkipDropsTheStepAndFinishes) {
  const std::string dir = seeded_run("nonfinite_skip");
  auto c = resumed_case(dir, 8, {"--train.on_nonfinite=skip"});
  c.env = {{"SHARDTUNE_TEST_NAN_AT_STEP", "6"}};
  c.expect_code = 0;
  const Outcome o = expect_fault(c);
  EXPECT_NE(o.out.find("is not finite at step 6: update skipped (1 in a row, 1 in all"),
            std::string::npos)
      << o.out;
  const std::string metrics = read_all(dir + "/run/metrics.jsonl");
  EXPECT_NE(metrics.find("\"nonfinite\":true"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"nonfinite_skipped\":1"), std::string::npos) << metrics;
  // The run went on to its end and saved a finite checkpoint there.
  EXPECT_EQ(latest_of(dir + "/run/checkpoints"), "step-00000008.h5");
}

TEST(FaultNonfinite, SkipStopsAfterTooManyInARow) {
  // A NaN weight makes every later step non-finite: skip gives up after max_nonfinite_steps.
  const std::string dir = seeded_run("nonfinite_skip_limit");
  const std::string before = latest_of(dir + "/run/checkpoints");
  auto c = resumed_case(dir, 12, {"--train.on_nonfinite=skip", "--train.max_nonfinite_steps=3",
                                  "--checkpoint.every=100"});
  c.env = {{"SHARDTUNE_TEST_NAN_AT_STEP", "6"}, {"SHARDTUNE_TEST_NAN_TARGET", "weight"}};
  c.expect_code = 3;
  c.expect_error = "(3 non-finite steps in a row, [train] max_nonfinite_steps=3)";
  c.allowed_stderr = {};
  expect_fault(c);
  EXPECT_EQ(latest_of(dir + "/run/checkpoints"), before);
}

TEST(FaultNonfinite, NonfiniteWeightsAreNeverSaved) {
  // Skipped steps leave the NaN weight in place; the save due at step 6 refuses to write it.
  const std::string dir = seeded_run("nonfinite_no_save");
  const std::string before = latest_of(dir + "/run/checkpoints");
  auto c = resumed_case(dir, 12, {"--train.on_nonfinite=skip", "--checkpoint.every=2"});
  c.env = {{"SHARDTUNE_TEST_NAN_AT_STEP", "6"}, {"SHARDTUNE_TEST_NAN_TARGET", "weight"}};
  c.expect_code = 3;
  c.expect_error = "trainable parameters are not finite at step 6; no checkpoint was written";
  expect_fault(c);
  EXPECT_EQ(latest_of(dir + "/run/checkpoints"), before);
}

// --- signals ---

namespace {

// A long run (it would take minutes) resumed from the seed; `signals` are sent to the launched
// process once metrics.jsonl shows step 6, `gap` seconds apart.
FaultCase signalled_case(const std::string& dir, int np, std::vector<int> signals,
                         double gap = 0.0) {
  auto c = resumed_case(dir, 100000, {"--checkpoint.every=1000"});
  c.np = np;
  const std::string metrics = dir + "/run/metrics.jsonl";
  c.while_running = [metrics, signals, gap](pid_t pid) {
    if (!wait_for([&] { return metrics_step(metrics) >= 6; }, 120)) return;
    for (size_t i = 0; i < signals.size(); ++i) {
      if (i > 0) std::this_thread::sleep_for(std::chrono::duration<double>(gap));
      ::kill(pid, signals[i]);
    }
  };
  return c;
}

void expect_stop_and_resume(const std::string& name, int np, int sig, const std::string& sig_name) {
  const std::string dir = seeded_run(name);
  auto c = signalled_case(dir, np, {sig});
  c.expect_code = 75;
  c.allowed_stderr = {"shardtune: signal " + std::to_string(sig) + " (" + sig_name +
                      "): stopping after step"};
  const Outcome o = expect_fault(c);
  EXPECT_NE(o.err.find("checkpoint written"), std::string::npos) << o.err;
  // The stop's checkpoint is `latest`; a resume continues from it and finishes.
  const std::string latest = latest_of(dir + "/run/checkpoints");
  ASSERT_FALSE(latest.empty());
  FaultCase resume;
  resume.args = {"train", "--config", dir + "/c.ini", "--resume", "auto",
                 "--train.steps=" + std::to_string(metrics_step(dir + "/run/metrics.jsonl") + 2)};
  resume.np = np;
  resume.expect_code = 0;
  resume.watch = {dir + "/run/checkpoints/" + latest};
  expect_fault(resume);
}

}  // namespace

TEST(FaultSignal, SigtermStopsAfterTheStepAndResumes) {
  expect_stop_and_resume("signal_term", 1, SIGTERM, "SIGTERM");
}

TEST(FaultSignal, SigintStopsAfterTheStepAndResumes) {
  expect_stop_and_resume("signal_int", 1, SIGINT, "SIGINT");
}

TEST(FaultSignal, Sigusr1ToMpirunStopsEveryRank) {
  // mpirun forwards SIGUSR1 to every rank; the job exits 75 like a single process.
  expect_stop_and_resume("signal_usr1_mpirun", 2, SIGUSR1, "SIGUSR1");
}

TEST(FaultSignal, SecondSignalExitsAtOnce) {
  // The first signal arrives while a checkpoint write is paused (test hook): the job would stop
  // after it; the second ends it at once. `latest` and every older file stay as they were.
  const std::string dir = seeded_run("signal_second");
  auto c = resumed_case(dir, 100000, {"--checkpoint.every=8"});
  c.env = {{"SHARDTUNE_TEST_CHECKPOINT_PAUSE_S", "30"}, {"SHARDTUNE_TEST_CHECKPOINT_PAUSE_STEP", "8"}};
  const std::string ckpt = dir + "/run/checkpoints";
  c.while_running = [ckpt](pid_t pid) {
    if (!wait_for([&] { return fs::exists(ckpt + "/pause-rank0.pid"); }, 120)) return;
    ::kill(pid, SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(pid, SIGTERM);
  };
  c.expect_code = 128 + SIGTERM;
  c.expect_error = "stop signal (SIGTERM): exiting at once, without a checkpoint";
  c.max_seconds = 25;  // well before the 30 s pause would have ended
  expect_fault(c);
  EXPECT_EQ(latest_of(ckpt), "step-00000004.h5");
  EXPECT_FALSE(fs::exists(ckpt + "/step-00000008.h5"));
}

TEST(FaultSignal, SignalDuringSetupAbandonsIt) {
  const std::string dir = seeded_run("signal_setup");
  auto c = train_case(dir, {"--resume", "auto", "--train.steps=100000"});
  c.hooked = true;
  const std::string flag = dir + "/setup-pause";
  c.env = {{"SHARDTUNE_TEST_SETUP_PAUSE_S", "2"}, {"SHARDTUNE_TEST_SETUP_PAUSE_FILE", flag}};
  c.while_running = [flag](pid_t pid) {
    if (wait_for([&] { return fs::exists(flag + ".0"); }, 120)) ::kill(pid, SIGTERM);
  };
  c.expect_code = 75;
  c.allowed_stderr = {"shardtune: signal 15 (SIGTERM): stopping during set-up; nothing was saved"};
  const Outcome o = expect_fault(c);
  EXPECT_NE(o.err.find("during set-up"), std::string::npos) << o.err;
  EXPECT_FALSE(fs::exists(dir + "/run/metrics.jsonl") &&
               metrics_step(dir + "/run/metrics.jsonl") > 4);
}

TEST(FaultSignal, SignalDuringSetupOnTwoRanks) {
  const std::string dir = seeded_run("signal_setup_mpirun");
  auto c = train_case(dir, {"--resume", "auto", "--train.steps=100000"});
  c.hooked = true;
  c.np = 2;
  const std::string flag = dir + "/setup-pause";
  c.env = {{"SHARDTUNE_TEST_SETUP_PAUSE_S", "2"}, {"SHARDTUNE_TEST_SETUP_PAUSE_FILE", flag}};
  c.while_running = [flag](pid_t pid) {
    if (wait_for([&] { return fs::exists(flag + ".1"); }, 120)) ::kill(pid, SIGUSR1);
  };
  c.expect_code = 75;
  c.allowed_stderr = {"shardtune: signal 10 (SIGUSR1): stopping during set-up"};
  expect_fault(c);
}
