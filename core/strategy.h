// The fine-tuning Strategy interface (a policy): what trains, what adapters exist, what a
// checkpoint must hold. Implementations live in strategies/, one file pair each, selected by name
// through strategies/registry.h.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/optimizer.h"

namespace shardtune::core {

class CausalLMImpl;

// Options of one strategy: the keys of INI section [strategy.<name>] (or --strategy.<name>.key=v),
// as strings; each strategy parses and validates its own, naming unknown keys.
using StrategyOptions = std::map<std::string, std::string>;

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // Injects adapters and/or freezes parameters (requires_grad=false). Called once, before the
  // optimizer is built.
  virtual void apply(CausalLMImpl& model) = 0;
  // Parameters the optimizer updates; frozen ones get no gradient and no optimizer state.
  std::vector<NamedParameter> trainable_parameters(CausalLMImpl& model) const;
  // One-line summary: trainable / total parameters and optimizer-state bytes (AdamW: 8 per
  // trainable fp32 parameter).
  std::string describe(CausalLMImpl& model) const;
};

// Helpers for strategies: read a typed option, erasing it from `options` so that leftovers can be
// reported as unknown.
std::string take_option(StrategyOptions& options, const std::string& key, const std::string& fallback);
void reject_unknown_options(const StrategyOptions& options, const std::string& strategy);

}  // namespace shardtune::core
