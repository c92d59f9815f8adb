// The training loop that composes the rest: model + strategy + optimizer + data + checkpoints on
// a rank grid. One Trainer per rank; every rank calls the same methods in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/batch.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/strategy.h"
#include "core/zero_optimizer.h"
#include "io/tokenizer.h"
#include "launch/config.h"
#include "launch/data.h"
#include "parallel/grad_sync.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

class MetricsWriter;

struct EvalResult {
  double loss = 0.0;        // mean per target token
  double perplexity = 0.0;
  int64_t tokens = 0;
};

struct StepResult {
  int64_t step = 0;         // 1-based number of the step just taken
  double loss = 0.0;        // mean per target token over the global batch
  double grad_norm = 0.0;   // before clipping
  double lr = 0.0;
  int64_t tokens = 0;       // real (non-padding) input tokens in the global batch
};

class Trainer {
 public:
  // Builds tokenizer, data, model (seeded), strategy, optimizer; loads [checkpoint] init_from.
  Trainer(Config config, parallel::RankGrid& grid);
  ~Trainer();

  // Runs [train] steps with logging, evaluation and checkpoints. Returns per-step losses.
  std::vector<double> train();
  // One optimizer step on the next global batch.
  StepResult step();
  EvalResult evaluate();
  // Saves a checkpoint of the current state; returns its path.
  std::string save();

  core::CausalLMImpl& model() { return *model_; }
  const Config& config() const { return config_; }
  const DataSets& data() const { return data_; }
  const io::Tokenizer& tokenizer() const { return *tokenizer_; }
  core::Strategy& strategy() { return *strategy_; }
  // Optimizer state bytes held by this rank (1/dp of the full state under ZeRO-1).
  int64_t optimizer_state_bytes() const;
  int64_t steps_done() const { return steps_done_; }

 private:
  void log_step(const StepResult& r, double step_seconds);
  void log_eval(const EvalResult& r);

  Config config_;
  parallel::RankGrid& grid_;
  std::unique_ptr<io::Tokenizer> tokenizer_;
  DataSets data_;
  std::shared_ptr<core::CausalLMImpl> model_;
  std::unique_ptr<core::Strategy> strategy_;
  std::vector<core::NamedParameter> trainable_;
  std::vector<bool> norm_counted_;  // per trainable_: counted in this rank's share of the norm
  std::unique_ptr<core::AdamW> optimizer_;
  std::unique_ptr<parallel::GradSync> grad_sync_;
  std::unique_ptr<core::ZeroAdamW> zero_;  // [parallel] zero=1 (then optimizer_ is null)
  core::LrSchedule schedule_;
  std::unique_ptr<core::DistributedSampler> sampler_;
  std::unique_ptr<MetricsWriter> metrics_;
  int64_t steps_done_ = 0;
  double train_seconds_ = 0.0;
  int64_t train_tokens_ = 0;
};

}  // namespace shardtune::launch
