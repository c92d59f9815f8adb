#include "launch/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/loss.h"
#include "io/checkpoint.h"
#include "launch/self_training.h"
#include "launch/resume.h"
#include "launch/signals.h"
#include "core/shard.h"
#include "parallel/errors.h"
#include "parallel/tp_ops.h"
#include "strategies/registry.h"

namespace shardtune::launch {

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_eta(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>((s / 60) % 60), static_cast<long long>(s % 60));
  return buf;
}
}  // namespace

// metrics.jsonl on rank 0: one object per logged step and per evaluation.
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path) : out_(path, std::ios::app) {
    require(static_cast<bool>(out_), path + ": cannot open metrics file for writing");
  }
  void write(const nlohmann::json& record) {
    out_ << record.dump() << "\n";
    out_.flush();
  }

 private:
  std::ofstream out_;
};

Trainer::Trainer(Config config, parallel::RankGrid& grid)
    : config_(std::move(config)), grid_(grid) {
  config_.validate(grid_.dims().world());
  core::validate_tp(config_.model, grid_.dims().tp);
  tokenizer_ = io::make_tokenizer(config_.data.tokenizer, "[data] tokenizer");
  require(config_.model.vocab_size >= tokenizer_->vocab_size(),
          "[model] vocab_size=" + std::to_string(config_.model.vocab_size) +
              " is smaller than the tokenizer's vocabulary (" +
              std::to_string(tokenizer_->vocab_size()) + ")");
  data_ = load_datasets(config_, *tokenizer_);

  model_ = core::build_model(config_.model, config_.train.seed, parallel::TpGroup{grid_.tp_ptr()});
  if (!config_.checkpoint.init_from.empty()) {
    load_base_weights(config_.checkpoint.init_from, *model_, config_.train.seed);
  }
  strategy_ = strategies::make_strategy(config_.strategy, config_.strategy_options);
  strategy_->set_seed(config_.train.seed);
  strategy_->apply(*model_);
  // sft self-training: pseudo-labelled prompts join the training set before sampling starts.
  add_self_training_data(*strategy_, *model_, *tokenizer_, config_, data_);
  if (!config_.checkpoint.init_from.empty()) {
    load_strategy_weights(config_.checkpoint.init_from, *model_);
  }
  trainable_ = strategy_->trainable_parameters(*model_);
  // Which gradients a global norm counts on this rank: TP-sharded ones always, TP-replicated ones
  // only on TP rank 0, so the sum over the TP group counts each parameter once (Megatron's
  // param_is_not_tensor_parallel_duplicate).
  {
    std::map<std::string, bool> sharded;
    for (const auto& [name, spec] : core::parameter_specs(*model_)) sharded[name] = spec.sharded();
    for (const auto& p : trainable_) {
      norm_counted_.push_back(grid_.coord().tp_rank == 0 || sharded[p.name]);
    }
  }
  core::AdamWOptions opt;
  opt.beta1 = config_.train.beta1;
  opt.beta2 = config_.train.beta2;
  opt.eps = config_.train.eps;
  opt.weight_decay = config_.train.weight_decay;
  const bool zero = config_.parallel.zero == 1;
  std::vector<torch::Tensor> params;
  for (auto& p : trainable_) params.push_back(p.param);
  grad_sync_ = std::make_unique<parallel::GradSync>(
      params, grid_.dp(), static_cast<int64_t>(config_.parallel.bucket_mb * 1024 * 1024), zero);
  if (zero) {
    zero_ = std::make_unique<core::ZeroAdamW>(trainable_, *grad_sync_, grid_.dp(), opt);
    zero_->set_norm_counted(norm_counted_);
  } else {
    optimizer_ = std::make_unique<core::AdamW>(trainable_, opt);
  }
  schedule_ = {config_.train.lr, config_.train.min_lr, config_.train.warmup_steps,
               config_.train.steps};
  sampler_ = std::make_unique<core::DistributedSampler>(
      static_cast<int64_t>(data_.train.size()), config_.train.global_batch,
      grid_.coord().dp_rank, grid_.dims().dp, config_.train.seed);
  // Dropout streams: the default one (same seed on every rank) for replicated activations, a
  // per-TP-rank one for sharded activations (parallel/tp_ops.h).
  parallel::rng_tracker().seed(config_.train.seed + 17, grid_.coord().tp_rank);
  // [checkpoint] resume / --resume: parameters, optimizer, step, sampler and RNG streams.
  if (const std::string file = resume_file(config_); !file.empty()) {
    TrainingState state{config_, grid_, *model_, *strategy_, trainable_, optimizer_.get(),
                        zero_.get(), *sampler_, *tokenizer_, steps_done_};
    load_training_checkpoint(file, state);
  }

  if (grid_.rank() == 0) {
    std::filesystem::create_directories(config_.train.out_dir);
    metrics_ = std::make_unique<MetricsWriter>(
        (std::filesystem::path(config_.train.out_dir) / "metrics.jsonl").string());
    spdlog::info("{} | optimizer state on this rank: {} bytes{} | data: {} train / {} eval "
                 "examples", strategy_->describe(*model_), optimizer_state_bytes(),
                 zero ? " (ZeRO-1)" : "", data_.train.size(), data_.eval.size());
  }
}

Trainer::~Trainer() = default;

StepResult Trainer::step() {
  // Test hook (tests/test_cli.cpp): an exception on one rank in the middle of training.
  if (const char* at = std::getenv("SHARDTUNE_TEST_THROW_AT_STEP");
      at && std::atoll(at) == steps_done_ + 1) {
    throw std::runtime_error("test hook SHARDTUNE_TEST_THROW_AT_STEP=" + std::string(at));
  }
  model_->train();
  const auto indices = sampler_->next();
  const int64_t micro = config_.train.micro_batch;
  std::vector<core::Batch> batches;
  int64_t local_targets = 0, local_tokens = 0;
  for (size_t begin = 0; begin < indices.size(); begin += static_cast<size_t>(micro)) {
    std::vector<const core::Example*> group;
    for (size_t i = begin; i < begin + static_cast<size_t>(micro) && i < indices.size(); ++i) {
      group.push_back(&data_.train[static_cast<size_t>(indices[i])]);
    }
    batches.push_back(core::collate(group, tokenizer_->pad_id()));
    local_targets += batches.back().targets;
    local_tokens += batches.back().attention_mask.sum().item<int64_t>();
  }
  // The loss is normalised by the number of targets in the whole global batch (all ranks, all
  // micro-batches): accumulation and data parallelism then equal one big batch exactly.
  auto counts = torch::tensor({local_targets, local_tokens}, torch::kLong);
  grid_.dp().all_reduce(counts, parallel::ReduceOp::kSum);
  const int64_t global_targets = std::max<int64_t>(counts[0].item<int64_t>(), 1);
  const double inv = 1.0 / static_cast<double>(global_targets);

  double loss_sum = 0.0;
  for (size_t i = 0; i < batches.size(); ++i) {
    // Only the last micro-batch's backward communicates (DDP's no_sync for the others).
    grad_sync_->set_sync(i + 1 == batches.size());
    auto& b = batches[i];
    auto logits = model_->forward(b.input_ids, b.attention_mask);
    auto loss = core::causal_lm_loss(logits, b.labels, model_->vocab_spec(), model_->tp());
    (loss.sum * inv).backward();
    loss_sum += loss.sum.item<double>();
  }
  // Gradients are divided by the global target count, so the sum over DP ranks is the gradient
  // of the global-batch mean loss.
  grad_sync_->finish();
  auto loss_t = torch::tensor({loss_sum}, torch::kDouble);
  grid_.dp().all_reduce(loss_t, parallel::ReduceOp::kSum);

  const double lr = schedule_.at(steps_done_);
  double norm = 0.0;
  if (zero_) {
    // Each rank holds a disjoint gradient shard: the global norm sums the shards' squares.
    auto sq = torch::tensor({zero_->shard_grad_norm_squared()}, torch::kDouble);
    grid_.dp().all_reduce(sq, parallel::ReduceOp::kSum);
    grid_.tp().all_reduce(sq, parallel::ReduceOp::kSum);
    norm = std::sqrt(sq.item<double>());
    const double coef = core::clip_coefficient(norm, config_.train.grad_clip);
    if (coef != 1.0) zero_->scale_shard_grads(coef);
    zero_->step(lr);
  } else {
    // Gradients are replicated across DP after the all-reduce; across TP each rank holds its
    // shards plus (TP rank 0 only) the replicated parameters.
    std::vector<core::NamedParameter> counted;
    for (size_t i = 0; i < trainable_.size(); ++i) {
      if (norm_counted_[i]) counted.push_back(trainable_[i]);
    }
    auto sq = torch::tensor({core::grad_norm_squared(counted)}, torch::kDouble);
    grid_.tp().all_reduce(sq, parallel::ReduceOp::kSum);
    norm = std::sqrt(sq.item<double>());
    core::scale_grads(trainable_, norm, config_.train.grad_clip);
    optimizer_->step(lr);
  }
  grad_sync_->zero_grad();
  ++steps_done_;
  return {steps_done_, loss_t.item<double>() * inv, norm, lr, counts[1].item<int64_t>()};
}

EvalResult Trainer::evaluate() {
  torch::NoGradGuard no_grad;
  const bool was_training = model_->is_training();
  model_->eval();
  // Each DP rank evaluates a strided share; sums are reduced so every rank gets the same result.
  const int64_t n = static_cast<int64_t>(data_.eval.size());
  const int64_t micro = config_.train.micro_batch;
  double loss_sum = 0.0;
  int64_t tokens = 0;
  std::vector<const core::Example*> group;
  auto flush = [&]() {
    if (group.empty()) return;
    auto b = core::collate(group, tokenizer_->pad_id());
    auto loss = core::causal_lm_loss(model_->forward(b.input_ids, b.attention_mask), b.labels,
                                     model_->vocab_spec(), model_->tp());
    loss_sum += loss.sum.item<double>();
    tokens += loss.tokens;
    group.clear();
  };
  for (int64_t i = grid_.coord().dp_rank; i < n; i += grid_.dims().dp) {
    group.push_back(&data_.eval[static_cast<size_t>(i)]);
    if (static_cast<int64_t>(group.size()) == micro) flush();
  }
  flush();
  auto sums = torch::tensor({loss_sum, static_cast<double>(tokens)}, torch::kDouble);
  grid_.dp().all_reduce(sums, parallel::ReduceOp::kSum);
  model_->train(was_training);
  EvalResult r;
  r.tokens = static_cast<int64_t>(sums[1].item<double>());
  r.loss = r.tokens > 0 ? sums[0].item<double>() / static_cast<double>(r.tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

void Trainer::log_step(const StepResult& r, double step_seconds) {
  train_seconds_ += step_seconds;
  train_tokens_ += r.tokens;
  if (grid_.rank() != 0) return;
  if (r.step % config_.train.log_every != 0 && r.step != config_.train.steps && r.step != 1) return;
  const double tokens_per_s = train_seconds_ > 0 ? train_tokens_ / train_seconds_ : 0.0;
  const double eta = train_seconds_ / r.step * (config_.train.steps - r.step);
  spdlog::info("step {}/{} | loss {:.4f} | lr {:.3e} | grad_norm {:.3f} | {:.0f} tok/s | ETA {}",
               r.step, config_.train.steps, r.loss, r.lr, r.grad_norm, tokens_per_s,
               format_eta(eta));
  metrics_->write({{"step", r.step},
                   {"loss", r.loss},
                   {"lr", r.lr},
                   {"grad_norm", r.grad_norm},
                   {"tokens", r.tokens},
                   {"tokens_per_s", tokens_per_s},
                   {"step_s", step_seconds},
                   {"elapsed_s", train_seconds_}});
}

void Trainer::log_eval(const EvalResult& r) {
  if (grid_.rank() != 0) return;
  spdlog::info("eval @ step {} | loss {:.4f} | ppl {:.2f} | {} tokens", steps_done_, r.loss,
               r.perplexity, r.tokens);
  metrics_->write({{"step", steps_done_},
                   {"eval_loss", r.loss},
                   {"eval_ppl", r.perplexity},
                   {"eval_tokens", r.tokens}});
}

int64_t Trainer::optimizer_state_bytes() const {
  return zero_ ? zero_->state_bytes() : optimizer_->state_bytes();
}

std::string Trainer::save() {
  TrainingState state{config_, grid_, *model_, *strategy_, trainable_, optimizer_.get(),
                      zero_.get(), *sampler_, *tokenizer_, steps_done_};
  return save_training_checkpoint(state);
}

std::vector<double> Trainer::train() {
  std::vector<double> losses;
  const bool has_eval = !data_.eval.empty();
  EvalResult first_eval;
  if (has_eval) {
    first_eval = evaluate();
    log_eval(first_eval);
  }
  while (steps_done_ < config_.train.steps) {
    const auto t0 = Clock::now();
    const auto r = step();
    log_step(r, seconds_since(t0));
    losses.push_back(r.loss);
    if (has_eval && config_.train.eval_every > 0 && steps_done_ % config_.train.eval_every == 0 &&
        steps_done_ != config_.train.steps) {
      log_eval(evaluate());
    }
    const bool saved_now = config_.checkpoint.every > 0 &&
                           steps_done_ % config_.checkpoint.every == 0 &&
                           steps_done_ != config_.train.steps;
    if (saved_now) save();
    // SIGTERM / SIGUSR1 on any rank: every rank stops after this same step, with a checkpoint.
    auto stop = torch::tensor({stop_signal()}, torch::kInt);
    grid_.world().all_reduce(stop, parallel::ReduceOp::kMax);
    if (stop.item<int>() != 0) {
      if (grid_.rank() == 0) {
        spdlog::warn("signal {} received: stopping after step {}", stop.item<int>(), steps_done_);
      }
      if (!saved_now) save();
      return losses;
    }
  }
  if (has_eval) {
    const auto last_eval = evaluate();
    log_eval(last_eval);
    if (grid_.rank() == 0) {
      spdlog::info("held-out loss {:.4f} -> {:.4f} (ppl {:.2f} -> {:.2f}) over {} steps",
                   first_eval.loss, last_eval.loss, first_eval.perplexity, last_eval.perplexity,
                   steps_done_);
    }
  }
  if (config_.checkpoint.save_final) save();
  return losses;
}

}  // namespace shardtune::launch
