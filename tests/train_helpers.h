// Shared helpers for tests that run the Trainer in-process on a one-rank grid.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "launch/config.h"
#include "launch/trainer.h"
#include "parallel/local_communicator.h"
#include "parallel/rank_grid.h"
#include "test_helpers.h"

namespace shardtune::testing {

// A tiny llama on byte tokens that trains in seconds.
inline launch::Config tiny_config(const std::string& out_dir) {
  launch::Config c;
  c.model.family = "llama";
  c.model.vocab_size = 260;
  c.model.hidden_size = 32;
  c.model.num_layers = 2;
  c.model.num_heads = 4;
  c.model.num_kv_heads = 2;
  c.model.intermediate_size = 64;
  c.model.max_position_embeddings = 64;
  c.train.steps = 10;
  c.train.global_batch = 8;
  c.train.micro_batch = 4;
  c.train.seq_len = 48;
  c.train.lr = 3e-3;
  c.train.warmup_steps = 2;
  c.train.log_every = 5;
  c.train.out_dir = out_dir;
  c.checkpoint.save_final = false;
  c.data.source = "synthetic";
  c.data.synthetic_samples = 64;
  return c;
}

inline parallel::RankGrid local_grid() {
  return parallel::RankGrid::create(std::make_shared<parallel::LocalCommunicator>("world"), 1);
}

// Trained parameters of two fp32 runs that differ only in summation order (ranks, micro-batches,
// vector widths), after AdamW steps. AdamW divides by sqrt(v), which magnifies the relative
// rounding difference of an element whose gradient is tiny, so a single element can drift further
// than the tensor as a whole (how far depends on the CPU's SIMD width: on an AVX-512 host one
// DP element moved 2e-5 of its tensor's largest value). The criterion is the tensor's relative
// error in norm, ||a - b|| / ||b|| <= rel, plus every element within 10 rel of the tensor's
// largest value: a wrong shard, a missing reduction or a wrong normalisation is off by O(1) and
// fails both.
inline void expect_trained_close(const torch::Tensor& a, const torch::Tensor& b,
                                 const std::string& what, double rel = 1e-5) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double norm_err = (a - b).norm().item<double>() / (b.norm().item<double>() + 1e-30);
  EXPECT_LE(norm_err, rel) << what << ": relative error in norm " << norm_err;
  const double err = (a - b).abs().max().item<double>();
  const double scale = b.abs().max().item<double>();
  EXPECT_LE(err, 10 * rel * scale + 1e-7) << what << ": max error " << err << " (scale " << scale
                                          << ")";
}

// Stop and resume. stop_and_save runs `c` for `total` steps uninterrupted, then runs it again from
// the start, stops after `stop` steps and saves; `at_stop` (optional) sees the stopped trainer
// after the save. expect_resumed_bitwise resumes `c` (from c.checkpoint.resume when set, else
// from the saved file) and expects steps stop+1..total to give the uninterrupted losses and final
// parameters bit for bit.
struct StoppedRun {
  std::vector<double> losses;                             // uninterrupted, steps 1..total
  std::map<std::string, torch::Tensor> final_parameters;  // uninterrupted, after `total` steps
  std::string file;                                       // checkpoint after `stop` steps
  int stop = 0;
};

inline StoppedRun stop_and_save(const launch::Config& c, parallel::RankGrid& grid, int total,
                                int stop,
                                const std::function<void(launch::Trainer&)>& at_stop = {}) {
  StoppedRun run;
  run.stop = stop;
  {
    launch::Trainer t(c, grid);
    for (int i = 0; i < total; ++i) run.losses.push_back(t.step().loss);
    for (const auto& p : t.model().named_parameters()) {
      run.final_parameters[p.key()] = p.value().detach().clone();
    }
  }
  launch::Trainer t(c, grid);
  for (int i = 0; i < stop; ++i) t.step();
  run.file = t.save();
  if (at_stop) at_stop(t);
  return run;
}

inline void expect_resumed_bitwise(launch::Config c, parallel::RankGrid& grid,
                                   const StoppedRun& run) {
  if (c.checkpoint.resume.empty()) c.checkpoint.resume = run.file;
  launch::Trainer t(c, grid);
  ASSERT_EQ(t.steps_done(), run.stop);
  for (size_t i = static_cast<size_t>(run.stop); i < run.losses.size(); ++i) {
    EXPECT_EQ(t.step().loss, run.losses[i]) << "step " << i + 1;
  }
  for (const auto& p : t.model().named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), run.final_parameters.at(p.key()))) << p.key();
  }
}

// Every parameter of `model` against the same-named one of `reference` (expect_trained_close).
inline void expect_parameters_close(core::CausalLMImpl& model, core::CausalLMImpl& reference) {
  auto ref_params = reference.named_parameters();
  for (auto& item : model.named_parameters()) {
    expect_trained_close(item.value().detach(), ref_params[item.key()].detach(), item.key());
  }
}

}  // namespace shardtune::testing
