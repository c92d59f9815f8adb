#include "core/layers.h"

#include <cmath>
#include <limits>

namespace shardtune::core {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool has_bias, LinearKind k)
    : kind(k) {
  // Values are set by the model's deterministic initialiser (core/model.cpp).
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  if (has_bias) bias = register_parameter("bias", torch::zeros({out_features}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  return torch::nn::functional::linear(x, weight, bias);
}

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t dim) {
  weight = register_parameter("weight", torch::empty({num_embeddings, dim}));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(weight, ids);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double e) : eps(e) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // Statistics in fp32 as Hugging Face's LlamaRMSNorm does, so bf16 runs match.
  auto xf = x.to(torch::kFloat);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

LayerNormImpl::LayerNormImpl(int64_t dim, double e) : eps(e) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

std::pair<torch::Tensor, torch::Tensor> rotary_tables(const torch::Tensor& position_ids,
                                                      int64_t head_dim, double theta,
                                                      torch::ScalarType dtype) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(position_ids.device());
  // inv_freq[i] = theta^(-2i/d), i < d/2 (computed in fp32 like Hugging Face).
  auto inv_freq =
      1.0 / torch::pow(theta, torch::arange(0, head_dim, 2, opts) / static_cast<double>(head_dim));
  auto freqs = position_ids.to(torch::kFloat).unsqueeze(-1) * inv_freq;  // [B, T, d/2]
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);                // [B, 1, T, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask) {
  auto m = attention_mask.to(torch::kLong);
  return (m.cumsum(-1) - 1).clamp_min(0);
}

torch::Tensor causal_attention_bias(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  const int64_t t = attention_mask.size(1);
  auto opts = torch::TensorOptions().dtype(torch::kBool).device(attention_mask.device());
  auto causal = torch::ones({t, t}, opts).tril();                       // [T, T]
  auto key_real = attention_mask.to(torch::kBool).unsqueeze(1);          // [B, 1, T]
  auto eye = torch::eye(t, opts);
  auto visible = (causal.unsqueeze(0) & key_real) | eye.unsqueeze(0);    // [B, T, T]
  // A finite minimum (not -inf) keeps softmax free of NaN for any row.
  const double neg = std::numeric_limits<float>::lowest();
  auto bias = torch::zeros(visible.sizes(), torch::TensorOptions().dtype(dtype).device(
                                                attention_mask.device()));
  bias.masked_fill_(visible.logical_not(), neg);
  return bias.unsqueeze(1);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double dropout, bool training) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)).mul_(scale).add_(bias);
  auto probs = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
  if (dropout > 0.0) probs = torch::dropout(probs, dropout, training);
  return torch::matmul(probs, v);
}

}  // namespace shardtune::core
