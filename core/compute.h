// How the model computes (not what it computes): [train] kernels / dtype / recompute.
//
//   fused      core/kernels' fused CPU operators (RMSNorm, SwiGLU, RoPE, causal softmax without
//              padding, vocabulary cross-entropy, multi-tensor AdamW) instead of the unfused
//              LibTorch expressions, and fp32 linear layers on oneDNN's sgemm instead of the BLAS
//              (set by core::TrainingStep). Same math; results agree with the LibTorch path to
//              float rounding (tests/test_kernels.cpp states the tolerance of each).
//   bf16       bf16 compute with fp32 master weights: GEMMs, attention and the MLP in bf16; the
//              residual stream, norms' statistics, softmax, the loss, gradients of the weights,
//              their DP reduction and AdamW in fp32 (docs/benchmarks.md argues the tolerance).
//   recompute  each transformer block's activations are recomputed in backward (core/recompute.h):
//              gradients bitwise those without.
// LibTorch-free so that core/train_options.h can name it.
#pragma once

namespace shardtune::core {

struct ComputeOptions {
  bool fused = true;
  bool bf16 = false;
  bool recompute = false;
};

}  // namespace shardtune::core
