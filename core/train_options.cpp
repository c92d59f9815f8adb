#include "core/train_options.h"

#include <cstdint>

#include "base/checks.h"
#include "base/errors.h"

namespace shardtune::core {

void TrainOptions::validate() const {
  using namespace base;
  require_count("[train] steps", steps, 1);
  require_count("[train] global_batch", global_batch, 1);
  require_count("[train] micro_batch", micro_batch, 1);
  require_count("[train] log_every", log_every, 1);
  require_count("[train] eval_every", eval_every, 0);
  require_count("[train] seq_len", seq_len, 2);
  require_count("[train] warmup_steps", warmup_steps, 0, steps);
  require_positive("[train] lr", lr);
  require_in_range("[train] min_lr", min_lr, 0.0, lr);
  require_non_negative("[train] weight_decay", weight_decay);
  // Adam's bias correction divides by 1 - beta^t: beta = 1 divides by zero.
  require_in_range("[train] beta1", beta1, 0.0, 1.0, /*open_hi=*/true);
  require_in_range("[train] beta2", beta2, 0.0, 1.0, /*open_hi=*/true);
  require_positive("[train] eps", eps);
  require_non_negative("[train] grad_clip", grad_clip);
  // seed: any uint64; "-1", which Boost would wrap to 2^64 - 1, is refused where options are
  // parsed (launch/config.cpp).
  require(!out_dir.empty(), "[train] out_dir must not be empty");
  require(on_nonfinite == "stop" || on_nonfinite == "skip",
          "[train] on_nonfinite='" + on_nonfinite + "' is unknown (known: stop, skip)");
  require_count("[train] max_nonfinite_steps", max_nonfinite_steps, 1);
  require(kernels == "fused" || kernels == "reference",
          "[train] kernels='" + kernels + "' is unknown (known: fused, reference)");
  require(dtype == "fp32" || dtype == "bf16",
          "[train] dtype='" + dtype + "' is unknown (known: fp32, bf16)");
  require(recompute == "none" || recompute == "block",
          "[train] recompute='" + recompute + "' is unknown (known: none, block)");
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
