// Activation recomputation (checkpointing, Chen et al. 2016; Megatron's "full" recompute per
// transformer block): run a block's forward without keeping its intermediate activations, and in
// backward run it again, with the same random-number state, to get them back.
//
//   auto y = core::recompute([&](const std::vector<torch::Tensor>& in) {
//     return block->forward(in[0], cos, sin, bias);
//   }, {x}, block->parameters());
//
// Memory: only the inputs are kept per block (plus whatever `fn` captures), instead of every
// activation inside it; cost: one more forward of the block during backward.
// RNG: the CPU default generator and every stream of parallel::rng_tracker() (dropout on
// replicated and on TP-sharded activations) are snapshotted when the forward runs and restored
// around the recomputation, then put back, so the recomputed dropout masks equal the first ones
// and the RNG sequence seen by the rest of training is the one it would be without
// recomputation. Gradients are bitwise those of running `fn` directly (tests/test_kernels.cpp).
//
// Contract: `fn` must be a deterministic function of its inputs, the captured tensors (e.g.
// parameters, masks) and the RNG state, and must issue the same TP collectives each time (it
// does: the same code on every rank). Gradients flow to every input that requires grad and to
// every leaf `fn` uses (parameters accumulate their .grad inside the backward, where their
// AccumulateGrad hooks fire as usual). `params`: the trainable leaves `fn` uses; they make the
// recomputation run even when no input requires grad (LoRA, P-tuning: a frozen backbone feeds
// the block, only adapters inside it train), which a checkpoint keyed on inputs alone would
// silently skip (the node then records through a throwaway leaf copy of one input, never through
// edges to the parameters: their AccumulateGrad post-hooks, which DP gradient sync counts, fire
// exactly once per backward). Inputs must be defined. When grad mode is off, recompute() just calls fn.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

namespace shardtune::core {

using RecomputeFn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

torch::Tensor recompute(const RecomputeFn& fn, const std::vector<torch::Tensor>& inputs,
                        const std::vector<torch::Tensor>& params = {});

}  // namespace shardtune::core
