// [train]: the optimisation of a run (steps, batches, learning-rate schedule, AdamW, clipping,
// seed) and the loop's cadence (logging, evaluation, run directory).
#pragma once

#include <cstdint>
#include <string>

#include "base/fields.h"
#include "core/compute.h"
#include "core/optimizer.h"

namespace shardtune::core {

struct TrainOptions : base::FieldList<TrainOptions> {
  int64_t steps = 100;
  int64_t global_batch = 8;
  int64_t micro_batch = 8;
  int64_t seq_len = 128;
  double lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;
  uint64_t seed = 1234;  // a negative value is refused when parsed, never wrapped
  int64_t log_every = 10;
  int64_t eval_every = 0;
  std::string out_dir = "runs/default";
  // A step whose loss or gradient norm is NaN or infinite (on any rank; every rank agrees):
  // "stop" ends the run with an error naming the step, before its update and without saving;
  // "skip" drops the step's update (counted in metrics.jsonl as nonfinite_skipped) and stops only
  // after max_nonfinite_steps such steps in a row.
  std::string on_nonfinite = "stop";
  int64_t max_nonfinite_steps = 5;
  std::string kernels = "fused";
  std::string dtype = "fp32";
  std::string recompute = "none";

  // UserError naming the [train] field (checks that need no other section).
  void validate() const;
  AdamWOptions adamw() const;
  LrSchedule schedule() const;
  // kernels / dtype / recompute as the model and optimizer take them (core/compute.h).
  ComputeOptions compute() const;

  // The field list (base/fields.h): every option once, with its doc line.
  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("steps", c.steps, "optimizer steps");
    v("global_batch", c.global_batch, "samples per step over all data-parallel ranks");
    v("micro_batch", c.micro_batch,
      "samples per forward/backward per rank (gradient accumulation fills the rest)");
    v("seq_len", c.seq_len, "tokens per sample (longer examples are truncated)");
    v("lr", c.lr, "peak learning rate");
    v("min_lr", c.min_lr, "learning rate at the end of the cosine decay");
    v("warmup_steps", c.warmup_steps, "linear warm-up steps");
    v("weight_decay", c.weight_decay, "AdamW decoupled weight decay (matrices only)");
    v("beta1", c.beta1, "AdamW beta1");
    v("beta2", c.beta2, "AdamW beta2");
    v("eps", c.eps, "AdamW epsilon");
    v("grad_clip", c.grad_clip, "clip the global gradient norm to this (0 = off)");
    v("seed", c.seed, "seed for init, data order and dropout");
    v("log_every", c.log_every, "steps between progress lines / metrics records");
    v("eval_every", c.eval_every, "steps between evaluations (0 = before and after training only)");
    v("out_dir", c.out_dir, "run directory (metrics.jsonl, default checkpoint dir)");
    v("on_nonfinite", c.on_nonfinite,
      "a NaN/inf loss or gradient norm: stop (error, no update, no checkpoint) | skip (drop the "
      "update)");
    v("max_nonfinite_steps", c.max_nonfinite_steps,
      "with on_nonfinite=skip: stop after this many non-finite steps in a row");
    v("kernels", c.kernels,
      "fused (core/kernels' fused CPU operators; fp32 linear layers, LoRA adapters and "
      "attention products on oneDNN's sgemm) | "
      "reference (the unfused LibTorch expressions and LibTorch's mm)");
    v("dtype", c.dtype,
      "fp32 | bf16 (bf16 compute; fp32 master weights, AdamW state, norms, softmax, loss and "
      "gradient sync)");
    v("recompute", c.recompute,
      "none | block (recompute each transformer block's activations in backward)");
  }
};

}  // namespace shardtune::core
