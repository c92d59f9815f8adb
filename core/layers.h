// Building blocks of the transformer families. Linear and Embedding are ShardTune's own modules
// (not torch::nn's) so that tensor parallelism and adapters replace or wrap them in one place
// without rewriting the model code.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace shardtune::core {

// How a linear layer is split when the model is tensor-parallel (Megatron terms). With tp=1 all
// three are an ordinary y = x W^T + b.
enum class LinearKind {
  kColumn,     // W split along out_features; output stays sharded
  kRow,        // W split along in_features; output reduced across the TP group
  kReplicated  // every rank holds all of W
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias, LinearKind kind);
  // x: [..., in_features] -> [..., out_features]
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;  // [out_features, in_features]
  torch::Tensor bias;    // [out_features] or undefined
  LinearKind kind;
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t dim);
  // ids: [B, T] int64 -> [B, T, dim]
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;  // [num_embeddings, dim]
};
TORCH_MODULE(Embedding);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // normalised in fp32, returned in x's dtype
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

// Position ids from an attention mask [B, T] (1 = token, 0 = padding): the index of each token
// among the real ones, so left- and right-padded batches get the same positions. [B, T] int64.
torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask);

// Additive attention bias [B, 1, T, T]: 0 where query i may see key j (j <= i and j is a real
// token), a large negative number elsewhere. The diagonal is always visible so that rows of
// padding queries stay finite (their outputs are never used).
torch::Tensor causal_attention_bias(const torch::Tensor& attention_mask, torch::ScalarType dtype);

// softmax(q k^T / sqrt(d) + bias) v with optional dropout on the probabilities.
// q: [B, H, T, d]; k, v: [B, H, S, d]; bias: [B, 1, T, S] -> [B, H, T, d]
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double dropout, bool training);

}  // namespace shardtune::core
