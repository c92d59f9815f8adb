#include "core/layers.h"

#include <cmath>
#include <limits>

#include "core/kernels/fused_ops.h"

namespace shardtune::core {

torch::Tensor mixed_linear(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias) {
  if (x.scalar_type() == torch::kBFloat16 && weight.scalar_type() == torch::kFloat) {
    return kernels::linear_bf16(x, weight, bias, /*cache=*/true);
  }
  if (kernels::onednn_fp32_gemm() && x.scalar_type() == torch::kFloat &&
      weight.scalar_type() == torch::kFloat && x.device().is_cpu() && weight.dim() == 2) {
    return kernels::linear_f32(x, weight, bias);
  }
  return torch::nn::functional::linear(x, weight, bias);
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool has_bias, LinearKind k, parallel::TpGroup g,
                       int64_t parts, bool grad_sum)
    : kind(k), in_features(in), out_features(out), tp(std::move(g)), grad_sum_over_tp(grad_sum) {
  const int r = tp.rank(), n = tp.size();
  switch (kind) {
    case LinearKind::kColumn:
      weight_spec_ = split_spec({out, in}, 0, r, n, parts);
      bias_spec_ = split_spec({out}, 0, r, n, parts);
      break;
    case LinearKind::kRow:
      weight_spec_ = split_spec({out, in}, 1, r, n);
      bias_spec_ = replicated_spec({out});
      break;
    case LinearKind::kReplicated:
      weight_spec_ = replicated_spec({out, in});
      bias_spec_ = replicated_spec({out});
      break;
  }
  // Values are set by the model's deterministic initialiser (core/model.cpp).
  weight = register_parameter("weight", torch::empty(weight_spec_.local_shape()));
  if (has_bias) bias = register_parameter("bias", torch::zeros(bias_spec_.local_shape()));
}

ShardSpec LinearImpl::shard_spec(const std::string& param_name) const {
  return param_name == "bias" ? bias_spec_ : weight_spec_;
}

void LinearImpl::add_adapter(const std::string& name, std::shared_ptr<LinearAdapter> adapter) {
  adapters_.push_back(register_module(name, std::move(adapter)));
}

torch::Tensor LinearImpl::with_adapters(torch::Tensor y, const torch::Tensor& x) {
  if (adapters_.empty()) return y;
  if (x.scalar_type() != torch::kBFloat16) {
    for (auto& a : adapters_) y = y + a->delta(x);
    return y;
  }
  const auto out_dtype = y.scalar_type();
  torch::Tensor xf;
  for (auto& a : adapters_) {
    if (a->computes_in_bf16()) {
      y = y + a->delta(x);
      continue;
    }
    if (!xf.defined()) xf = x.to(torch::kFloat);
    y = y + a->delta(xf);  // promotes to fp32
  }
  return y.to(out_dtype);
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (kind == LinearKind::kRow) {
    auto y = parallel::reduce_from_tp(mixed_linear(x, weight).to(torch::kFloat), tp);
    if (bias.defined()) y = y + bias;
    return with_adapters(y, x);
  }
  if (kind == LinearKind::kReplicated && !grad_sum_over_tp) {
    return with_adapters(mixed_linear(x, weight, bias), x);
  }
  return forward_shared(x, parallel::copy_to_tp(x, tp));
}

torch::Tensor LinearImpl::forward_shared(const torch::Tensor& x, const torch::Tensor& x_f) {
  if (kind == LinearKind::kColumn) {
    return with_adapters(mixed_linear(x_f, weight, bias), x);
  }
  if (kind == LinearKind::kReplicated && grad_sum_over_tp) {
    // Each rank uses part of this layer's output, so each holds part of the gradient of W, b and
    // x: f on the weights sums theirs over the group, x_f (already f) sums the input's.
    auto w = parallel::copy_to_tp(weight, tp);
    auto b = bias.defined() ? parallel::copy_to_tp(bias, tp) : bias;
    return with_adapters(mixed_linear(x_f, w, b), x);
  }
  return forward(x);
}

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t dim, parallel::TpGroup g,
                             bool vocab_parallel)
    : tp(std::move(g)) {
  spec_ = vocab_parallel ? split_spec({num_embeddings, dim}, 0, tp.rank(), tp.size())
                         : replicated_spec({num_embeddings, dim});
  weight = register_parameter("weight", torch::empty(spec_.local_shape()));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  if (!spec_.sharded()) return torch::embedding(weight, ids);
  auto in_shard = (ids >= spec_.offset) & (ids < spec_.offset + spec_.length);
  auto local_ids = (ids - spec_.offset).masked_fill(in_shard.logical_not(), 0);
  auto out = torch::embedding(weight, local_ids) * in_shard.unsqueeze(-1).to(weight.scalar_type());
  return parallel::reduce_from_tp(out, tp);
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

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x, torch::ScalarType out_dtype,
                                   bool fused) {
  if (fused) return kernels::rms_norm(x, weight, eps, out_dtype);
  return forward(x).to(out_dtype);
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
  const int64_t t = m.size(-1);
  auto index = torch::arange(t, m.options()).expand_as(m);
  // A document starts where the id changes to a non-zero one; padding continues the count.
  auto previous = torch::cat({torch::zeros_like(m.narrow(-1, 0, 1)), m.narrow(-1, 0, t - 1)}, -1);
  auto starts = m.ne(previous) & m.ne(0);
  auto start_index = std::get<0>(torch::where(starts, index, torch::zeros_like(index)).cummax(-1));
  return index - start_index;
}

torch::Tensor causal_attention_bias(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  const int64_t t = attention_mask.size(1);
  auto opts = torch::TensorOptions().dtype(torch::kBool).device(attention_mask.device());
  auto causal = torch::ones({t, t}, opts).tril();                       // [T, T]
  auto document = attention_mask.to(torch::kLong);
  auto key_real = document.ne(0).unsqueeze(1);                           // [B, 1, T]
  auto same_document = document.unsqueeze(2) == document.unsqueeze(1);   // [B, T, T]
  auto eye = torch::eye(t, opts);
  auto visible = (causal.unsqueeze(0) & key_real & same_document) | eye.unsqueeze(0);
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
