#include "core/training_step.h"

#include <cmath>
#include <map>

#include "core/kernels/fused_ops.h"
#include "core/loss.h"
#include "core/zero_adamw.h"

namespace shardtune::core {

namespace {

// TP-sharded parameters count on every TP rank, TP-replicated ones on TP rank 0 only, so the sum
// over the TP group counts each parameter once.
std::vector<bool> counted_in_norm(CausalLMImpl& model, const std::vector<NamedParameter>& params) {
  std::map<std::string, bool> sharded;
  for (const auto& [name, spec] : parameter_specs(model)) sharded[name] = spec.sharded();
  std::vector<bool> counted;
  for (const auto& p : params) counted.push_back(model.tp().rank() == 0 || sharded[p.name]);
  return counted;
}

}  // namespace

TrainingStep::TrainingStep(CausalLMImpl& model, std::vector<NamedParameter> trainable,
                           parallel::Communicator& dp, TrainingStepOptions options)
    : model_(model), trainable_(std::move(trainable)), dp_(dp), options_(options) {
  model_.set_compute(options_.compute);
  // The fused kernels include oneDNN's fp32 GEMMs; `kernels = reference` keeps LibTorch's mm.
  kernels::set_onednn_fp32_gemm(options_.compute.fused);
  options_.adamw.fused = options_.compute.fused;
  std::vector<torch::Tensor> params;
  for (auto& p : trainable_) params.push_back(p.param);
  grad_sync_ = std::make_unique<parallel::GradSync>(params, dp_, options_.bucket_bytes,
                                                    options_.zero);
  NormShare norm{counted_in_norm(model_, trainable_), {}};
  // ZeRO-1: each DP rank holds a disjoint gradient shard, so the norm sums over DP first. Plain
  // AdamW: gradients are replicated over DP after the all-reduce; only TP shards differ.
  if (options_.zero) norm.groups.push_back(&dp_);
  if (model_.tp().comm) norm.groups.push_back(model_.tp().comm.get());
  if (options_.zero) {
    optimizer_ = std::make_unique<ZeroAdamW>(trainable_, *grad_sync_, dp_, options_.adamw, norm);
  } else {
    optimizer_ = std::make_unique<AdamW>(trainable_, options_.adamw, norm);
  }
}

TrainingStep::~TrainingStep() = default;

StepStats TrainingStep::run(const std::vector<const Example*>& examples, double lr) {
  model_.train();
  const auto micro = static_cast<size_t>(options_.micro_batch);
  std::vector<Batch> batches;
  int64_t local_targets = 0, local_tokens = 0;
  for (size_t begin = 0; begin < examples.size(); begin += micro) {
    const size_t end = std::min(examples.size(), begin + micro);
    batches.push_back(collate({examples.begin() + begin, examples.begin() + end}, options_.pad_id));
    local_targets += batches.back().targets;
    local_tokens += batches.back().attention_mask.sum().item<int64_t>();
  }
  auto counts = torch::tensor({local_targets, local_tokens}, torch::kLong);
  dp_.all_reduce(counts, parallel::ReduceOp::kSum);
  const int64_t global_targets = std::max<int64_t>(counts[0].item<int64_t>(), 1);
  const double inv = 1.0 / static_cast<double>(global_targets);

  double loss_sum = 0.0;
  for (size_t i = 0; i < batches.size(); ++i) {
    // Only the last micro-batch's backward communicates (DDP's no_sync for the others).
    grad_sync_->set_sync(i + 1 == batches.size());
    auto& b = batches[i];
    auto logits = model_.forward(b.input_ids, b.attention_mask);
    auto loss = causal_lm_loss(logits, b.labels, model_.vocab_spec(), model_.tp(),
                               model_.compute().fused);
    (loss.sum * inv).backward();
    loss_sum += loss.sum.item<double>();
  }
  // Gradients are divided by the global target count, so the sum over DP ranks is the gradient
  // of the global-batch mean loss.
  grad_sync_->finish();
  auto loss_t = torch::tensor({loss_sum}, torch::kDouble);
  dp_.all_reduce(loss_t, parallel::ReduceOp::kSum);

  StepStats stats;
  stats.grad_norm = clip_grad_norm(*optimizer_, options_.grad_clip);
  stats.loss = loss_t.item<double>() * inv;
  stats.tokens = counts[1].item<int64_t>();
  // A NaN/inf anywhere must not reach the parameters or the Adam moments, and every rank must
  // take the same branch (a rank that updated while another skipped would diverge silently).
  auto nonfinite = torch::tensor(
      {std::isfinite(stats.loss) && std::isfinite(stats.grad_norm) ? 0 : 1}, torch::kInt);
  (options_.finite_group ? *options_.finite_group : dp_)
      .all_reduce(nonfinite, parallel::ReduceOp::kMax);
  stats.finite = nonfinite.item<int>() == 0;
  if (stats.finite) {
    optimizer_->step(lr);
    // The bf16 copies of the weights belong to the step that made them (ZeRO-1's all-gather
    // writes parameters through MPI, which no version counter sees).
    if (model_.compute().bf16) kernels::clear_bf16_weight_cache();
  }
  grad_sync_->zero_grad();
  return stats;
}

EvalResult evaluate(CausalLMImpl& model, const std::vector<Example>& examples,
                    parallel::Communicator& dp, int64_t micro_batch, int64_t pad_id) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t n = static_cast<int64_t>(examples.size());
  double loss_sum = 0.0;
  int64_t tokens = 0;
  std::vector<const Example*> group;
  auto flush = [&]() {
    if (group.empty()) return;
    auto b = collate(group, pad_id);
    auto loss = causal_lm_loss(model.forward(b.input_ids, b.attention_mask), b.labels,
                               model.vocab_spec(), model.tp(), model.compute().fused);
    loss_sum += loss.sum.item<double>();
    tokens += loss.tokens;
    group.clear();
  };
  for (int64_t i = dp.rank(); i < n; i += dp.size()) {
    group.push_back(&examples[static_cast<size_t>(i)]);
    if (static_cast<int64_t>(group.size()) == micro_batch) flush();
  }
  flush();
  auto sums = torch::tensor({loss_sum, static_cast<double>(tokens)}, torch::kDouble);
  dp.all_reduce(sums, parallel::ReduceOp::kSum);
  model.train(was_training);
  EvalResult r;
  r.tokens = static_cast<int64_t>(sums[1].item<double>());
  r.loss = r.tokens > 0 ? sums[0].item<double>() / static_cast<double>(r.tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace shardtune::core
