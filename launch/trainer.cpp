#include "launch/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "io/tokenizer.h"
#include "launch/resume.h"
#include "launch/signals.h"
#include "launch/weights.h"
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

Trainer::Trainer(Config config, parallel::RankGrid& grid, TestHooks hooks)
    : config_(std::move(config)), grid_(grid), hooks_(std::move(hooks)) {
  const auto& c = config_;
  config_.validate(grid_.dims().world());
  core::validate_tp(c.model, grid_.dims().tp);
  tokenizer_ = io::make_tokenizer(c.data.tokenizer, "[data] tokenizer");
  require(c.model.vocab_size >= tokenizer_->vocab_size(),
          "[model] vocab_size=" + std::to_string(c.model.vocab_size) +
              " is smaller than the tokenizer's vocabulary (" +
              std::to_string(tokenizer_->vocab_size()) + ")");
  data_ = io::load_datasets(c.data, c.train.seq_len, *tokenizer_, c.model.vocab_size, c.train.seed);

  model_ = core::build_model(c.model, c.train.seed, parallel::TpGroup{grid_.tp_ptr()});
  if (!c.checkpoint.init_from.empty()) {
    load_base_weights(c.checkpoint.init_from, *model_, c.train.seed);
  } else if (!c.model_source.from_hf.empty()) {
    load_hf_base(c.model_source.from_hf, *model_);
  }
  strategy_ = strategies::make_strategy(c.strategy, c.strategy_options);
  strategy_->set_seed(c.train.seed);
  strategy_->apply(*model_);
  load_added_parameters(*strategy_, *model_);
  io::StrategyData strategy_data(data_, c.data, *tokenizer_, c.train.seq_len,
                                 [](const std::string& line) { spdlog::info("{}", line); });
  strategy_->prepare_data(*model_, strategy_data);
  if (!c.checkpoint.init_from.empty()) load_strategy_weights(c.checkpoint.init_from, *model_);

  core::TrainingStepOptions step_options;
  step_options.micro_batch = c.train.micro_batch;
  step_options.grad_clip = c.train.grad_clip;
  step_options.zero = c.parallel.zero == 1;
  step_options.bucket_bytes = c.parallel.bucket_bytes();
  step_options.pad_id = tokenizer_->pad_id();
  step_options.adamw = c.train.adamw();
  step_options.compute = c.train.compute();
  step_ = std::make_unique<core::TrainingStep>(*model_, strategy_->trainable_parameters(*model_),
                                               grid_.dp(), step_options);
  schedule_ = c.train.schedule();
  sampler_ = std::make_unique<core::DistributedSampler>(
      static_cast<int64_t>(data_.train.size()), c.train.global_batch, grid_.coord().dp_rank,
      grid_.dims().dp, c.train.seed);
  // Dropout streams: the default one (same seed on every rank) for replicated activations, a
  // per-TP-rank one for sharded activations (parallel/tp_ops.h).
  parallel::rng_tracker().seed(c.train.seed + 17, grid_.coord().tp_rank);
  // [checkpoint] resume / --resume: parameters, optimizer, step, sampler and RNG streams.
  if (const std::string file = resume_file(c); !file.empty()) {
    TrainingState state{c, grid_, *model_, *strategy_, *step_, *sampler_, *tokenizer_,
                        steps_done_, {}};
    load_training_checkpoint(file, state);
  }

  if (grid_.rank() == 0) {
    std::filesystem::create_directories(c.train.out_dir);
    metrics_ = std::make_unique<MetricsWriter>(
        (std::filesystem::path(c.train.out_dir) / "metrics.jsonl").string());
    spdlog::info("{} | {} state on this rank: {} bytes | data: {} train / {} eval examples",
                 strategy_->describe(*model_), step_->optimizer().name(), optimizer_state_bytes(),
                 data_.train.size(), data_.eval.size());
  }
}

Trainer::~Trainer() = default;

StepResult Trainer::step() {
  if (hooks_.before_step) hooks_.before_step(steps_done_ + 1);
  std::vector<const core::Example*> share;
  for (int64_t i : sampler_->next()) share.push_back(&data_.train[static_cast<size_t>(i)]);
  StepResult r;
  r.lr = schedule_.at(steps_done_);
  const auto stats = step_->run(share, r.lr);
  r.step = ++steps_done_;
  r.loss = stats.loss;
  r.grad_norm = stats.grad_norm;
  r.tokens = stats.tokens;
  return r;
}

core::EvalResult Trainer::evaluate() {
  return core::evaluate(*model_, data_.eval, grid_.dp(), config_.train.micro_batch,
                        tokenizer_->pad_id());
}

void Trainer::log_step(const StepResult& r, double step_seconds) {
  train_seconds_ += step_seconds;
  train_tokens_ += r.tokens;
  const auto& t = config_.train;
  if (grid_.rank() != 0) return;
  if (r.step % t.log_every != 0 && r.step != t.steps && r.step != 1) return;
  const double tokens_per_s = train_seconds_ > 0 ? train_tokens_ / train_seconds_ : 0.0;
  const double eta = train_seconds_ / r.step * (t.steps - r.step);
  spdlog::info("step {}/{} | loss {:.4f} | lr {:.3e} | grad_norm {:.3f} | {:.0f} tok/s | ETA {}",
               r.step, t.steps, r.loss, r.lr, r.grad_norm, tokens_per_s, format_eta(eta));
  metrics_->write({{"step", r.step},
                   {"loss", r.loss},
                   {"lr", r.lr},
                   {"grad_norm", r.grad_norm},
                   {"tokens", r.tokens},
                   {"tokens_per_s", tokens_per_s},
                   {"step_s", step_seconds},
                   {"elapsed_s", train_seconds_}});
}

void Trainer::log_eval(const core::EvalResult& r) {
  if (grid_.rank() != 0) return;
  spdlog::info("eval @ step {} | loss {:.4f} | ppl {:.2f} | {} tokens", steps_done_, r.loss,
               r.perplexity, r.tokens);
  metrics_->write({{"step", steps_done_},
                   {"eval_loss", r.loss},
                   {"eval_ppl", r.perplexity},
                   {"eval_tokens", r.tokens}});
}

std::string Trainer::save() {
  TrainingState state{config_, grid_, *model_, *strategy_, *step_, *sampler_, *tokenizer_,
                      steps_done_, hooks_.inside_checkpoint_write};
  return save_training_checkpoint(state);
}

std::vector<double> Trainer::train() {
  const auto& t = config_.train;
  std::vector<double> losses;
  const bool has_eval = !data_.eval.empty();
  core::EvalResult first_eval;
  if (has_eval) {
    first_eval = evaluate();
    log_eval(first_eval);
  }
  while (steps_done_ < t.steps) {
    const auto t0 = Clock::now();
    const auto r = step();
    log_step(r, seconds_since(t0));
    losses.push_back(r.loss);
    const bool last = steps_done_ == t.steps;
    if (has_eval && t.eval_every > 0 && steps_done_ % t.eval_every == 0 && !last) {
      log_eval(evaluate());
    }
    const int64_t every = config_.checkpoint.every;
    const bool saved_now = every > 0 && steps_done_ % every == 0 && !last;
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
