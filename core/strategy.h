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

#include "core/optimizer.h"
#include "core/shard.h"

namespace shardtune::core {

class CausalLMImpl;

// Options of one strategy: the keys of INI section [strategy.<name>] (or --strategy.<name>.key=v),
// as strings; each strategy parses and validates its own, naming unknown keys.
using StrategyOptions = std::map<std::string, std::string>;

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
// Comma-separated list, blanks trimmed, empty items dropped.
std::vector<std::string> split_list(const std::string& text);

}  // namespace shardtune::core
