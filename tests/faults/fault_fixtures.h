// What the run-side fault cases start from: a tiny configuration (a run of a few steps takes a
// second or two) and a seeded run directory with real checkpoints, trained once per build and
// copied into each case's scratch directory, so every case can watch pre-existing checkpoints.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "fault_case.h"

namespace shardtune::faults {

// [model] tiny llama, [train] 4 steps of 4 samples, synthetic data, a checkpoint every 2 steps.
// `extra` is appended (new sections or keys not set here); override set keys on the command line.
inline std::string tiny_ini(const std::string& dir, const std::string& extra = "") {
  return "[model]\nvocab_size = 260\nhidden_size = 32\nnum_layers = 1\nnum_heads = 2\n"
         "intermediate_size = 32\nmax_position_embeddings = 64\n"
         "[train]\nsteps = 4\nglobal_batch = 4\nmicro_batch = 1\nseq_len = 32\nlog_every = 1\n"
         "out_dir = " + dir + "/run\n"
         "[data]\nsource = synthetic\nsynthetic_samples = 64\nmax_eval_samples = 8\n"
         "[checkpoint]\nevery = 2\nkeep_last = 0\n" + extra;
}

// Writes <dir>/c.ini = tiny_ini(dir, extra) and returns its path.
inline std::string tiny_config(const std::string& dir, const std::string& extra = "") {
  const std::string path = dir + "/c.ini";
  write_file(path, tiny_ini(dir, extra));
  return path;
}

// A scratch directory `name` holding c.ini and run/ with the checkpoints of a finished 4-step run
// (steps 2 and 4, `latest` naming step 4). The seed is trained once per build of shardtune, under
// a lock, so cases running in parallel share it.
inline std::string seeded_run(const std::string& name) {
  const std::string seed = built_once("seed", [](const std::string& dir) {
    FaultCase c;
    c.args = {"train", "--config", tiny_config(dir)};
    c.expect_code = 0;
    const Outcome o = run_case(c);
    if (o.code != 0) ADD_FAILURE() << "seed run failed:\n" << o.out << o.err;
    return o.code == 0;
  });
  const std::string dir = scratch_dir(name);
  fs::copy(seed + "/run", dir + "/run", fs::copy_options::recursive);
  tiny_config(dir);
  return dir;
}

// `shardtune train --config <dir>/c.ini extra...` in a seeded case directory, watching the seeded
// run. A fresh run (the default) checkpoints into <dir>/fresh-ckpt unless `extra` names a
// [checkpoint] dir: the seeded directory belongs to the seeded run, and a new run is refused there
// (issue 13) before it would reach the fault under test. With --resume in `extra` the case
// continues the seeded run in its own directory.
inline FaultCase train_case(const std::string& dir, std::vector<std::string> extra = {}) {
  FaultCase c;
  c.args = {"train", "--config", dir + "/c.ini"};
  bool keep_dir = false;
  for (const auto& a : extra) {
    keep_dir = keep_dir || a.rfind("--checkpoint.dir", 0) == 0 || a.rfind("--resume", 0) == 0;
  }
  if (!keep_dir) c.args.push_back("--checkpoint.dir=" + dir + "/fresh-ckpt");
  c.args.insert(c.args.end(), extra.begin(), extra.end());
  c.watch = {dir + "/run"};
  return c;
}

// Waits (polling) until `done()` or `seconds` pass; returns done().
template <typename F>
bool wait_for(F done, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// The largest "step" of a training record in metrics.jsonl (0 when none yet).
inline long long metrics_step(const std::string& metrics) {
  long long step = 0;
  for (const auto& line : lines_of(read_all(metrics))) {
    if (line.find("\"loss\"") == std::string::npos) continue;
    const auto p = line.find("\"step\":");
    if (p != std::string::npos) step = std::max(step, std::atoll(line.c_str() + p + 7));
  }
  return step;
}

// The file `latest` names in a checkpoint directory (trailing whitespace dropped).
inline std::string latest_of(const std::string& ckpt_dir) {
  std::string text = read_all(ckpt_dir + "/latest");
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

}  // namespace shardtune::faults
