// Strategy registry: name -> factory. Adding a strategy = one file pair + one line in
// registry.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/strategy.h"

namespace shardtune::strategies {

// Throws UserError "[strategy] name='x' is unknown (known: ...)".
std::unique_ptr<core::Strategy> make_strategy(const std::string& name, core::StrategyOptions options);
std::vector<std::string> strategy_names();

}  // namespace shardtune::strategies
