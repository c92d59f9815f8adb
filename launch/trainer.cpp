#include "launch/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "base/strings.h"
#include "io/tokenizer.h"
#include "launch/agree.h"
#include "launch/progress.h"
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
// Whether the loss sees any token of `e` (position i predicts labels[i], i >= 1).
bool has_target(const core::Example& e) {
  for (size_t i = 1; i < e.labels.size(); ++i) {
    if (e.labels[i] != core::kIgnoreIndex) return true;
  }
  return false;
}

// An example whose targets were all truncated away by seq_len trains nothing; a data set with no
// target at all would train at loss 0 without a word.
void check_targets(const io::DataSets& data, const Config& c, bool speak) {
  const auto count = [](const std::vector<core::Example>& set) {
    return std::count_if(set.begin(), set.end(), has_target);
  };
  const std::string source =
      c.data.source == "jsonl" ? "[data] train_file=" + c.data.train_file : "[data] source=" + c.data.source;
  const auto train = count(data.train);
  require(train > 0, source + ": none of the " + std::to_string(data.train.size()) +
                         " training examples keeps a target token within [train] seq_len=" +
                         std::to_string(c.train.seq_len) +
                         " (every answer is truncated away, or nothing is trained on); raise "
                         "seq_len or shorten the prompts");
  if (!speak) return;
  if (static_cast<size_t>(train) < data.train.size()) {
    spdlog::warn("{}: {} of {} training examples have no target token within seq_len={} and train "
                 "nothing",
                 source, data.train.size() - static_cast<size_t>(train), data.train.size(),
                 c.train.seq_len);
  }
  if (!data.eval.empty() && count(data.eval) == 0) {
    spdlog::warn("the {} held-out examples have no target token within seq_len={}: evaluation "
                 "measures nothing",
                 data.eval.size(), c.train.seq_len);
  }
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
  tokenizer_ = io::make_model_tokenizer(c.data.tokenizer, c.model.vocab_size);
  data_ = io::load_datasets(c.data, c.train.seq_len, *tokenizer_, c.model.vocab_size, c.train.seed);
  check_targets(data_, c, grid_.rank() == 0);

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
  step_options.finite_group = &grid_.world();
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
                        steps_done_, {}, &data_.train};
    load_training_checkpoint(file, state);
  }

  last_saved_step_ = steps_done_;  // a resumed checkpoint is not written again on a stop
  if (grid_.rank() == 0) {
    std::error_code ec;
    std::filesystem::create_directories(c.train.out_dir, ec);
    require(!ec && std::filesystem::is_directory(c.train.out_dir),
            "[train] out_dir=" + c.train.out_dir + ": cannot create the run directory (" +
                (ec ? ec.message() : std::string("exists and is not a directory")) + ")");
    metrics_ = std::make_unique<MetricsWriter>(
        (std::filesystem::path(c.train.out_dir) / "metrics.jsonl").string());
    spdlog::info("{} | {} state on this rank: {} bytes | data: {} train / {} eval examples",
                 strategy_->describe(*model_), step_->optimizer().name(), optimizer_state_bytes(),
                 data_.train.size(), data_.eval.size());
  }
}

Trainer::~Trainer() = default;

void Trainer::prepare_step() {
  if (hooks_.before_step) hooks_.before_step(steps_done_ + 1);
  if (hooks_.before_step_parameters) {
    hooks_.before_step_parameters(steps_done_ + 1, grid_.rank(), step_->trainable());
  }
}

StepResult Trainer::run_step() {
  std::vector<const core::Example*> share;
  for (int64_t i : sampler_->next()) share.push_back(&data_.train[static_cast<size_t>(i)]);
  StepResult r;
  r.lr = schedule_.at(steps_done_);
  const auto stats = step_->run(share, r.lr);
  r.step = ++steps_done_;
  r.loss = stats.loss;
  r.grad_norm = stats.grad_norm;
  r.tokens = stats.tokens;
  r.finite = stats.finite;
  return r;
}

StepResult Trainer::step() {
  prepare_step();
  return run_step();
}

void Trainer::fail_together(bool failed, const std::string& message) {
  if (!failed) return;
  if (grid_.rank() == 0) print_error(message);
  throw AgreedError(kNonFiniteExitCode);
}

void Trainer::handle_nonfinite(const StepResult& r) {
  const auto& t = config_.train;
  ++nonfinite_in_row_;
  ++nonfinite_total_;
  const std::string what = "the loss (" + base::format_double(r.loss) + ") or gradient norm (" +
                           base::format_double(r.grad_norm) + ") is not finite at step " +
                           std::to_string(r.step);
  if (grid_.rank() == 0) {
    metrics_->write({{"step", r.step},
                     {"nonfinite", true},
                     {"loss", base::format_double(r.loss)},
                     {"grad_norm", base::format_double(r.grad_norm)},
                     {"nonfinite_skipped", nonfinite_total_}});
  }
  // Every rank got the same StepResult::finite, so every rank takes the same branch here.
  fail_together(t.on_nonfinite == "stop",
                "[train] on_nonfinite=stop: " + what +
                    "; its update was not applied and no checkpoint was written from it");
  fail_together(nonfinite_in_row_ >= t.max_nonfinite_steps,
                "[train] on_nonfinite=skip: " + what + " (" + std::to_string(nonfinite_in_row_) +
                    " non-finite steps in a row, [train] max_nonfinite_steps=" +
                    std::to_string(t.max_nonfinite_steps) +
                    "); stopping without writing a checkpoint from it");
  if (grid_.rank() == 0) {
    spdlog::warn("{}: update skipped ({} in a row, {} in all; [train] on_nonfinite=skip)", what,
                 nonfinite_in_row_, nonfinite_total_);
  }
}

void Trainer::save_checked() {
  bool finite = true;
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : step_->trainable()) {
      finite = finite && torch::isfinite(p.param).all().item<bool>();
    }
  }
  auto bad = torch::tensor({finite ? 0 : 1}, torch::kInt);
  grid_.world().all_reduce(bad, parallel::ReduceOp::kMax);
  fail_together(bad.item<int>() != 0,
                "trainable parameters are not finite at step " + std::to_string(steps_done_) +
                    "; no checkpoint was written from them");
  save();
  last_saved_step_ = steps_done_;
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
  const double tokens_per_s = train_seconds_ > 0 ? train_tokens_ / train_seconds_ : 0.0;
  const double eta = train_seconds_ / r.step * (t.steps - r.step);
  const std::string line =
      fmt::format("step {}/{} | loss {:.4f} | lr {:.3e} | grad_norm {:.3f} | {:.0f} tok/s | ETA {}",
                  r.step, t.steps, r.loss, r.lr, r.grad_norm, tokens_per_s, format_eta(eta));
  if (r.step % t.log_every != 0 && r.step != t.steps && r.step != 1) {
    progress::show(line);  // a terminal sees every step; a log only the log_every lines
    return;
  }
  spdlog::info("{}", line);
  nlohmann::json record = {{"step", r.step},
                           {"loss", r.loss},
                           {"lr", r.lr},
                           {"grad_norm", r.grad_norm},
                           {"tokens", r.tokens},
                           {"tokens_per_s", tokens_per_s},
                           {"step_s", step_seconds},
                           {"elapsed_s", train_seconds_}};
  if (nonfinite_total_ > 0) record["nonfinite_skipped"] = nonfinite_total_;
  metrics_->write(record);
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
                      steps_done_, hooks_.inside_checkpoint_write, &data_.train};
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
    // The step's local preparation may fail on one rank only; the boundary below, which every
    // rank reaches before the step's first collective, turns that into one agreed error. It also
    // carries stop signals, so every rank stops before the same step.
    std::exception_ptr error;
    try {
      prepare_step();
    } catch (...) {
      error = std::current_exception();
    }
    if (const int sig = agree_at_boundary(grid_.world(), error); sig != 0) {
      stopped_by_ = sig;
      std::string saved = "nothing new to save";
      if (steps_done_ > last_saved_step_) {
        save_checked();
        saved = "checkpoint written";
      }
      if (grid_.rank() == 0) {
        announce_stop(sig, ("after step " + std::to_string(steps_done_) + " (" + saved +
                            "); exit status 75, resume with --resume auto")
                               .c_str());
      }
      return losses;
    }
    const auto r = run_step();
    if (!r.finite) {
      handle_nonfinite(r);  // throws unless the step is skipped
    } else {
      nonfinite_in_row_ = 0;
      log_step(r, seconds_since(t0));
      losses.push_back(r.loss);
    }
    const bool last = steps_done_ == t.steps;
    if (has_eval && t.eval_every > 0 && steps_done_ % t.eval_every == 0 && !last) {
      log_eval(evaluate());
    }
    const int64_t every = config_.checkpoint.every;
    if (every > 0 && steps_done_ % every == 0 && !last) save_checked();
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
  if (config_.checkpoint.save_final) save_checked();
  return losses;
}

}  // namespace shardtune::launch
