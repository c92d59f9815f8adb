// The Trainer wires the layers together for one run on a rank grid: tokenizer and data (io/),
// model and initial weights, strategy (strategies/), the training step and optimizer (core/),
// checkpoints and resume (launch/resume.h), and the loop's cadence (logging, evaluation, saving,
// stop signals). The algorithms live below launch/: a step is core::TrainingStep, evaluation
// core::evaluate. One Trainer per rank; every rank calls the same methods in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/batch.h"
#include "core/model.h"
#include "core/strategy.h"
#include "core/training_step.h"
#include "io/data.h"
#include "launch/config.h"
#include "launch/hooks.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

class MetricsWriter;

struct StepResult {
  int64_t step = 0;         // 1-based number of the step just taken
  double loss = 0.0;        // mean per target token over the global batch
  double grad_norm = 0.0;   // before clipping
  double lr = 0.0;
  int64_t tokens = 0;       // real (non-padding) input tokens in the global batch
};

class Trainer {
 public:
  // Builds tokenizer, data, model (seeded), strategy, optimizer; loads [checkpoint] init_from and
  // resumes per [checkpoint] resume.
  Trainer(Config config, parallel::RankGrid& grid, TestHooks hooks = {});
  ~Trainer();

  // Runs [train] steps with logging, evaluation and checkpoints. Returns per-step losses.
  std::vector<double> train();
  // One optimizer step on the next global batch.
  StepResult step();
  core::EvalResult evaluate();
  // Saves a checkpoint of the current state; returns its path.
  std::string save();

  core::CausalLMImpl& model() { return *model_; }
  const Config& config() const { return config_; }
  const io::DataSets& data() const { return data_; }
  const core::Tokenizer& tokenizer() const { return *tokenizer_; }
  core::Strategy& strategy() { return *strategy_; }
  // Optimizer state bytes held by this rank (1/dp of the full state under ZeRO-1).
  int64_t optimizer_state_bytes() const { return step_->optimizer().state_bytes(); }
  int64_t steps_done() const { return steps_done_; }

 private:
  void log_step(const StepResult& r, double step_seconds);
  void log_eval(const core::EvalResult& r);

  Config config_;
  parallel::RankGrid& grid_;
  TestHooks hooks_;
  std::unique_ptr<core::Tokenizer> tokenizer_;
  io::DataSets data_;
  std::shared_ptr<core::CausalLMImpl> model_;
  std::unique_ptr<core::Strategy> strategy_;
  std::unique_ptr<core::TrainingStep> step_;
  core::LrSchedule schedule_;
  std::unique_ptr<core::DistributedSampler> sampler_;
  std::unique_ptr<MetricsWriter> metrics_;
  int64_t steps_done_ = 0;
  double train_seconds_ = 0.0;
  int64_t train_tokens_ = 0;
};

}  // namespace shardtune::launch
