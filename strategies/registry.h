// Strategy registry: name -> factory. The built-in strategies (sft, lora, ptuning-v2, freeze) are
// one file pair each plus one line in registry.cpp; a program that links ShardTune as a library
// adds its own with register_strategy() before it runs the CLI or builds a Trainer
// (examples/custom_strategy/), and selects it like a built-in one: [strategy] name=<its name>.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/strategy.h"

namespace shardtune::strategies {

// Builds a strategy from its [strategy.<name>] options; the strategy parses and validates them
// (core::take_option / reject_unknown_options) and throws UserError naming a bad key.
using StrategyFactory = std::function<std::unique_ptr<core::Strategy>(core::StrategyOptions)>;

// Adds `name` to the registry. Throws UserError when `name` is empty, contains '.' or whitespace
// (it is an INI section suffix: [strategy.<name>]), is already registered (built-in names
// included), or `factory` is empty. Every rank must register the same strategies (the registry is
// per process); call it before any make_strategy, from one thread.
void register_strategy(const std::string& name, StrategyFactory factory);

// Throws UserError "[strategy] name='x' is unknown (known: ...)".
std::unique_ptr<core::Strategy> make_strategy(const std::string& name, core::StrategyOptions options);
// Built-in names first, then registered ones in registration order.
std::vector<std::string> strategy_names();

}  // namespace shardtune::strategies
