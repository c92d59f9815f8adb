#include "core/train_options.h"

#include "base/errors.h"

namespace shardtune::core {

void TrainOptions::validate() const {
  const auto positive = [](const char* name, int64_t v) {
    require(v > 0, std::string(name) + "=" + std::to_string(v) + " must be positive");
  };
  positive("[train] steps", steps);
  positive("[train] global_batch", global_batch);
  positive("[train] micro_batch", micro_batch);
  positive("[train] log_every", log_every);
  require(seq_len >= 2, "[train] seq_len must be at least 2");
  require(lr > 0, "[train] lr must be positive");
  require(warmup_steps >= 0 && warmup_steps <= steps, "[train] warmup_steps must be in [0, steps]");
  require(kernels == "fused" || kernels == "reference",
          "[train] kernels=" + kernels + ": expected fused or reference");
  require(dtype == "fp32" || dtype == "bf16", "[train] dtype=" + dtype + ": expected fp32 or bf16");
  require(recompute == "none" || recompute == "block",
          "[train] recompute=" + recompute + ": expected none or block");
}

ComputeOptions TrainOptions::compute() const {
  ComputeOptions c;
  c.fused = kernels == "fused";
  c.bf16 = dtype == "bf16";
  c.recompute = recompute == "block";
  return c;
}

AdamWOptions TrainOptions::adamw() const {
  AdamWOptions o;
  o.beta1 = beta1;
  o.beta2 = beta2;
  o.eps = eps;
  o.weight_decay = weight_decay;
  return o;
}

LrSchedule TrainOptions::schedule() const { return {lr, min_lr, warmup_steps, steps}; }

}  // namespace shardtune::core
