// One optimizer step of data- and tensor-parallel training, and held-out evaluation: the training
// algorithm, independent of how data, checkpoints and logging are wired (launch/'s Trainer).
//
// A step, on every rank (collective over the DP group, and the TP group inside the model):
//   1. this DP rank's share of the global batch is cut into micro-batches (collated, padded);
//   2. the target count of the whole global batch is all-reduced over DP, so every micro-batch's
//      loss is sum(token losses) / (global targets): accumulation and data parallelism then give
//      exactly the gradient of one large batch;
//   3. forward + backward per micro-batch; only the last backward communicates, its gradient
//      buckets all-reduced (or reduce-scattered under ZeRO-1) over DP as they fill
//      (parallel::GradSync);
//   4. clip_grad_norm (each parameter's gradient counted once across TP and DP); a non-finite
//      loss or norm on any rank (one all-reduced flag) skips the update; else the optimizer
//      update at the scheduled learning rate; gradients zeroed.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/batch.h"
#include "core/compute.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "parallel/communicator.h"
#include "parallel/grad_sync.h"

namespace shardtune::core {

struct TrainingStepOptions {
  int64_t micro_batch = 8;       // examples per forward/backward on this rank
  double grad_clip = 1.0;        // max global gradient norm; <= 0: off
  bool zero = false;             // ZeRO-1: AdamW state sharded over DP
  int64_t bucket_bytes = 25 << 20;  // DP gradient bucket size
  int64_t pad_id = 0;
  AdamWOptions adamw;           // adamw.fused is overridden by compute.fused
  // Every rank of the job must agree on whether a step was finite: the flag is MAX all-reduced
  // over this communicator (the world; it must outlive the step). nullptr: over `dp` only.
  parallel::Communicator* finite_group = nullptr;
  ComputeOptions compute;       // set on the model by the constructor (core/compute.h)
};

struct StepStats {
  double loss = 0.0;       // mean per target token over the global batch
  double grad_norm = 0.0;  // before clipping
  int64_t tokens = 0;      // real (non-padding) input tokens in the global batch
  // False when the loss or the gradient norm was NaN or infinite on any rank of finite_group:
  // then no update was applied (parameters and optimizer state are as before the step) and the
  // gradients were zeroed. Every rank of finite_group gets the same value.
  bool finite = true;
};

class TrainingStep {
 public:
  // Sets options.compute on the model; builds the DP gradient sync over `trainable` and the
  // optimizer (ZeRO-1 AdamW with
  // options.zero, else AdamW); the norm counts TP-replicated gradients on TP rank 0 only (the
  // model's parameter specs say which are replicated). `dp` must outlive this object. Collective
  // over nothing; the first run() is the first collective.
  TrainingStep(CausalLMImpl& model, std::vector<NamedParameter> trainable,
               parallel::Communicator& dp, TrainingStepOptions options);
  ~TrainingStep();

  // One optimizer step on `examples`, this DP rank's share of the global batch (the same number
  // on every DP rank), at learning rate `lr`.
  StepStats run(const std::vector<const Example*>& examples, double lr);

  Optimizer& optimizer() { return *optimizer_; }
  const std::vector<NamedParameter>& trainable() const { return trainable_; }

 private:
  CausalLMImpl& model_;
  std::vector<NamedParameter> trainable_;
  parallel::Communicator& dp_;
  TrainingStepOptions options_;
  std::unique_ptr<parallel::GradSync> grad_sync_;
  std::unique_ptr<Optimizer> optimizer_;
};

struct EvalResult {
  double loss = 0.0;  // mean per target token
  double perplexity = 0.0;
  int64_t tokens = 0;
};

// Held-out loss of `examples` without dropout: each DP rank takes a strided share (rank, rank +
// dp, ...) in micro-batches; the sums are all-reduced, so every rank gets the same result.
// Collective over `dp` (and TP inside the model).
EvalResult evaluate(CausalLMImpl& model, const std::vector<Example>& examples,
                    parallel::Communicator& dp, int64_t micro_batch, int64_t pad_id);

}  // namespace shardtune::core
