#include "core/loss.h"

#include <limits>

#include "core/kernels/fused_ops.h"

namespace shardtune::core {

LossSum causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t t = logits.size(1);
  auto shifted_logits = logits.narrow(1, 0, t - 1).reshape({-1, logits.size(-1)});
  auto targets = labels.narrow(1, 1, t - 1).reshape({-1});
  auto sum = torch::nn::functional::cross_entropy(
      shifted_logits.to(torch::kFloat), targets,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(
          torch::kSum));
  return {sum, count_targets(labels)};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Per-row loss of [N, chunk] local logits against global target ids [N].
struct VocabParallelCrossEntropy : torch::autograd::Function<VocabParallelCrossEntropy> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& targets, int64_t offset, int64_t length,
                               int64_t comm_handle) {
    auto& comm = *reinterpret_cast<parallel::Communicator*>(comm_handle);
    const int64_t chunk = logits.size(1);
    auto x = logits.detach().to(torch::kFloat).clone();
    if (length < chunk) {  // padding columns never win the max nor add to the sum
      x.narrow(1, length, chunk - length).fill_(-std::numeric_limits<float>::infinity());
    }
    auto row_max = std::get<0>(x.max(1));
    if (length == 0) row_max.fill_(-std::numeric_limits<float>::max());
    comm.all_reduce(row_max, parallel::ReduceOp::kMax);
    x.sub_(row_max.unsqueeze(1));
    auto ignored = targets.eq(kIgnoreIndex);
    auto local_t = targets - offset;
    auto mine = (local_t >= 0) & (local_t < length) & ignored.logical_not();
    auto safe_t = local_t.masked_fill(mine.logical_not(), 0);
    // masked_fill, not a product: a rank whose chunk is all padding gathers -inf.
    auto target_logit = x.gather(1, safe_t.unsqueeze(1)).squeeze(1).masked_fill(mine.logical_not(), 0.0);
    auto exp = x.exp_();  // x now holds exp(logit - max)
    auto sums = torch::stack({exp.sum(1), target_logit}, 1).contiguous();  // [N, 2]
    comm.all_reduce(sums, parallel::ReduceOp::kSum);
    auto sum_exp = sums.select(1, 0);
    auto loss = (sum_exp.log() - sums.select(1, 1)).masked_fill(ignored, 0.0);
    exp.div_(sum_exp.unsqueeze(1));  // softmax of this rank's columns
    ctx->save_for_backward({exp, safe_t, mine, ignored});
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits.scalar_type());
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto saved = ctx->get_saved_variables();
    auto g = saved[0].clone();
    const auto& safe_t = saved[1];
    const auto& mine = saved[2];
    const auto& ignored = saved[3];
    g.scatter_add_(1, safe_t.unsqueeze(1), -mine.to(torch::kFloat).unsqueeze(1));
    g.mul_((grad[0] * ignored.logical_not().to(torch::kFloat)).unsqueeze(1));
    const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {g.to(dtype), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

LossSum causal_lm_loss(const torch::Tensor& local_logits, const torch::Tensor& labels,
                       const ShardSpec& vocab, const parallel::TpGroup& tp) {
  if (!tp.active() || !vocab.sharded()) return causal_lm_loss(local_logits, labels);
  const int64_t t = local_logits.size(1);
  auto shifted = local_logits.narrow(1, 0, t - 1).reshape({-1, local_logits.size(-1)});
  auto targets = labels.narrow(1, 1, t - 1).reshape({-1});
  auto per_token = VocabParallelCrossEntropy::apply(
      shifted, targets, vocab.offset, vocab.length, reinterpret_cast<int64_t>(tp.comm.get()));
  return {per_token.sum(), count_targets(labels)};
}

LossSum causal_lm_loss(const torch::Tensor& local_logits, const torch::Tensor& labels,
                       const ShardSpec& vocab, const parallel::TpGroup& tp, bool fused) {
  if (!fused) return causal_lm_loss(local_logits, labels, vocab, tp);
  const bool sharded = tp.active() && vocab.sharded();
  // Row t predicts labels[t + 1]; the last row's target is ignored (no copy of the logits).
  auto per_token = kernels::fused_cross_entropy(
      local_logits, kernels::next_token_targets(labels), sharded ? vocab.offset : 0,
      sharded ? vocab.length : local_logits.size(-1), sharded ? tp.comm.get() : nullptr);
  return {per_token.sum(), count_targets(labels)};
}

int64_t count_targets(const torch::Tensor& labels) {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(kIgnoreIndex).sum().item<int64_t>();
}

}  // namespace shardtune::core
