// The fine-tuning Strategy interface (a policy): what trains, what adapters exist, what a
// checkpoint must hold. Implementations live in strategies/, one file pair each, selected by name
// through strategies/registry.h.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/example.h"
#include "core/optimizer.h"
#include "core/shard.h"
#include "core/tokenizer.h"

namespace shardtune::core {

class CausalLMImpl;

// Options of one strategy: the keys of INI section [strategy.<name>] (or --strategy.<name>.key=v),
// as strings; each strategy parses and validates its own, naming unknown keys.
using StrategyOptions = std::map<std::string, std::string>;

// What a strategy sees of the training data at data time (Strategy::prepare_data), given by the
// host (launch/, through io/), which owns files and the data pipeline: a strategy asks for text by
// path and never opens a file itself.
class TrainingData {
 public:
  virtual ~TrainingData() = default;
  virtual const Tokenizer& tokenizer() const = 0;
  // Examples are truncated to this many tokens ([train] seq_len).
  virtual int64_t seq_len() const = 0;
  // The prompts of a JSONL file in any form the data pipeline reads (a record's prompt, or its
  // text for {"text"} lines), at most `max_prompts` (0 = all). UserError naming the file/line.
  virtual std::vector<std::string> read_prompts(const std::string& path,
                                                int64_t max_prompts) const = 0;
  // A (prompt, response) pair tokenized [BOS] prompt response [EOS] and truncated: labelled as
  // the training data is ([data] train_on_prompt) when `as_training_data`, else with the loss on
  // the response and EOS only.
  virtual Example tokenize(const std::string& prompt, const std::string& response,
                           bool as_training_data) const = 0;
  // The training examples; a strategy may append its own before sampling starts.
  virtual std::vector<Example>& train() = 0;
  // One line for the run's log (the host prints it once, on rank 0).
  virtual void report(const std::string& line) = 0;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // Seed of the run ([train] seed): adapters initialise from named streams of it, so every TP
  // layout builds the same full tensors. Call before apply().
  void set_seed(uint64_t seed) { seed_ = seed; }
  // Injects adapters and/or freezes parameters (requires_grad=false). Called once, after the base
  // weights are loaded and before the optimizer is built. Adapter parameters are registered under
  // the model (so named_parameters() and parameter_specs() list them with their ShardSpecs).
  virtual void apply(CausalLMImpl& model) = 0;
  // Parameters the optimizer updates; frozen ones get no gradient and no optimizer state.
  std::vector<NamedParameter> trainable_parameters(CausalLMImpl& model) const;
  // What a checkpoint of this strategy must hold besides a reference to the base model: the
  // trainable parameters with their shard specs (their optimizer state has the same specs).
  std::vector<std::pair<std::string, ShardSpec>> checkpoint_specs(CausalLMImpl& model) const;
  // Whether `name` is a parameter this strategy added (adapter, prefix); such parameters are not
  // part of an exported (merged) model.
  virtual bool is_added_parameter(const std::string& name) const;
  // A checkpoint (file or directory) whose tensors start this strategy's added parameters instead
  // of their initialisation (P-tuning v2's init_from: a prefix trained elsewhere); "" = none.
  // A strategy never reads files: the host (launch/) reads them into the parameters apply()
  // registered, right after apply().
  virtual std::string added_parameters_from() const { return ""; }
  // Data time: after apply() (and the added parameters' loading), before the sampler is built.
  // A strategy may read and extend the training data (SFT self-training adds pseudo-labelled
  // examples). Collective when the model is (every rank calls it; TP ranks in lock-step).
  virtual void prepare_data(CausalLMImpl& model, TrainingData& data) {}
  // Folds the strategy into the base weights for export so that the base parameters alone give
  // the trained model's outputs (LoRA: W += scale * B A). A no-op for strategies that train base
  // weights in place (sft, freeze); UserError for strategies without a merged form (ptuning-v2).
  virtual void merge(CausalLMImpl& model);
  // One-line summary: trainable / total parameters and optimizer-state bytes (AdamW: 8 per
  // trainable fp32 parameter).
  std::string describe(CausalLMImpl& model) const;

 protected:
  uint64_t seed_ = 1234;
};

// Counts of `model` under its current requires_grad flags (this rank's local tensors).
struct ParameterCounts {
  int64_t trainable = 0;
  int64_t total = 0;
};
ParameterCounts count_parameters(CausalLMImpl& model);

// Helpers for strategies: read a typed option, erasing it from `options` so that leftovers can be
// reported as unknown.
std::string take_option(StrategyOptions& options, const std::string& key, const std::string& fallback);
void reject_unknown_options(const StrategyOptions& options, const std::string& strategy);
// Typed variants: UserError "[strategy.<name>] key='v' is not a ..." on a malformed value.
int64_t take_int(StrategyOptions& options, const std::string& strategy, const std::string& key,
                 int64_t fallback);
double take_double(StrategyOptions& options, const std::string& strategy, const std::string& key,
                   double fallback);
bool take_bool(StrategyOptions& options, const std::string& strategy, const std::string& key,
               bool fallback);

}  // namespace shardtune::core
