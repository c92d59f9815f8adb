// Building blocks of the transformer families. Linear and Embedding are ShardTune's own modules
// (not torch::nn's) so that tensor parallelism and adapters replace or wrap them in one place
// without rewriting the model code.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/compute.h"
#include "core/shard.h"
#include "parallel/tp_ops.h"

namespace shardtune::core {

// y = x W^T + b. x in bf16 with an fp32 (master) W: bf16 GEMMs on a bf16 copy of W cached for
// the step, weight gradients in fp32 (kernels::linear_bf16); otherwise torch's linear.
torch::Tensor mixed_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias = {});

// How a linear layer is split when the model is tensor-parallel (Megatron terms). With tp=1 all
// three are an ordinary y = x W^T + b.
enum class LinearKind {
  kColumn,     // W split along out_features; output stays sharded; input enters through copy_to_tp
  kRow,        // W split along in_features; input is sharded, output reduced across the TP group,
               // bias (not split) added once after the reduction
  kReplicated  // every rank holds all of W
};

class LinearImpl;

// An additive adapter on a Linear (LoRA): y = base(x) + sum of adapters' delta(x). `x` is the
// input exactly as given to LinearImpl::forward (replicated for column/replicated layers, this
// rank's slice for row layers); delta must return the output in the layer's output layout
// (this rank's slice for column layers, the full reduced output for row layers), doing its own TP
// collectives. Registered as a submodule of the Linear, so its parameters are named
// "<linear>.<adapter name>.<param>".
class LinearAdapter : public torch::nn::Module {
 public:
  virtual torch::Tensor delta(const torch::Tensor& x) = 0;
  // In a bf16 run (x in bf16): true, delta takes x as it is and computes in bf16 itself (fp32
  // master weights through mixed_linear, as the base layers do); false (the default, for adapters
  // written with fp32 operations), delta is given x promoted to fp32 and the sum is rounded to
  // the layer's output dtype once.
  virtual bool computes_in_bf16() const { return false; }
};

class LinearImpl : public torch::nn::Module, public ShardedModule {
 public:
  // in/out_features are global (logical). `parts` > 1: the output dim is `parts` fused segments
  // (GPT-2's [q | k | v]) each split across TP. `grad_sum_over_tp`: a replicated weight that each
  // TP rank uses for only part of its output (grouped-query k/v heads replicated because
  // kv_heads % tp != 0); its gradient and its input's gradient are summed over the TP group.
  LinearImpl(int64_t in_features, int64_t out_features, bool bias, LinearKind kind,
             parallel::TpGroup tp = {}, int64_t parts = 1, bool grad_sum_over_tp = false);
  // x: [..., in] (row: [..., in / tp]) -> [..., out] (column: [..., local out]).
  // A bf16 x computes in bf16 (mixed_linear() above); a row layer then returns fp32, its partial sums
  // reduced over TP in fp32 (the residual stream is fp32). Adapters run in fp32 on x widened
  // (they are low-rank and hold fp32 weights); a column layer's output is then rounded back to
  // x's dtype.
  torch::Tensor forward(const torch::Tensor& x);
  // As forward(x), with x_f = copy_to_tp(x) computed once by the caller and shared by several
  // column layers reading the same input (one backward all-reduce instead of one per layer).
  torch::Tensor forward_shared(const torch::Tensor& x, const torch::Tensor& x_f);
  ShardSpec shard_spec(const std::string& param_name) const override;

  // Registers an adapter under `name` (adapters run in registration order).
  void add_adapter(const std::string& name, std::shared_ptr<LinearAdapter> adapter);
  const std::vector<std::shared_ptr<LinearAdapter>>& adapters() const { return adapters_; }

  torch::Tensor weight;  // local: column [parts * chunk, in], row [out, in / tp], else [out, in]
  torch::Tensor bias;    // local: column [parts * chunk], else [out]; undefined when no bias
  LinearKind kind;
  int64_t in_features, out_features;
  parallel::TpGroup tp;
  bool grad_sum_over_tp;

 private:
  torch::Tensor with_adapters(torch::Tensor y, const torch::Tensor& x);
  ShardSpec weight_spec_, bias_spec_;
  std::vector<std::shared_ptr<LinearAdapter>> adapters_;
};
TORCH_MODULE(Linear);

// A lookup table. vocab_parallel: rows split across the TP group (Megatron's
// VocabParallelEmbedding): the table is padded to a multiple of tp, ids outside this rank's rows
// contribute zeros, and the partial outputs are summed with reduce_from_tp.
class EmbeddingImpl : public torch::nn::Module, public ShardedModule {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t dim, parallel::TpGroup tp = {},
                bool vocab_parallel = false);
  // ids: [B, T] int64 -> [B, T, dim]
  torch::Tensor forward(const torch::Tensor& ids);
  ShardSpec shard_spec(const std::string& param_name) const override { return spec_; }
  const ShardSpec& spec() const { return spec_; }
  torch::Tensor weight;  // local [chunk, dim] (vocab-parallel) or [num_embeddings, dim]
  parallel::TpGroup tp;

 private:
  ShardSpec spec_;
};
TORCH_MODULE(Embedding);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // normalised in fp32, returned in x's dtype
  // Returned in out_dtype; fused: one pass (kernels::rms_norm), else the LibTorch expression
  // above followed by a cast.
  torch::Tensor forward(const torch::Tensor& x, torch::ScalarType out_dtype, bool fused);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

// Hugging Face "rotate half" rotary embedding. cos/sin: [B, 1, T, head_dim] built from position
// ids; x: [B, heads, T, head_dim].
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// cos and sin tables for position ids [B, T]: each [B, 1, T, head_dim].
std::pair<torch::Tensor, torch::Tensor> rotary_tables(const torch::Tensor& position_ids,
                                                      int64_t head_dim, double theta,
                                                      torch::ScalarType dtype);

// Attention masks [B, T] hold document ids: 0 = padding, 1 = a token of the row's only document,
// or 1, 2, 3, ... for the documents of a packed row (core::Batch, [data] packing).
//
// Position ids from an attention mask: each token's index within its document, so left- and
// right-padded batches get the same positions, and packed documents each start at 0 (padding
// positions continue the count; they are never used). [B, T] int64.
torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask);

// Additive attention bias [B, 1, T, T]: 0 where query i may see key j (j <= i and j is a real
// token of i's document), a large negative number elsewhere. The diagonal is always visible so that rows of
// padding queries stay finite (their outputs are never used).
torch::Tensor causal_attention_bias(const torch::Tensor& attention_mask, torch::ScalarType dtype);

// softmax(q k^T / sqrt(d) + bias) v with optional dropout on the probabilities.
// q: [B, H, T, d]; k, v: [B, H, S, d]; bias: [B, 1, T, S] -> [B, H, T, d]
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double dropout, bool training);

}  // namespace shardtune::core
