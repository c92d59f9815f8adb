// Weights from files into a model at start: [checkpoint] init_from (the base before a strategy
// is applied, then a strategy checkpoint's own tensors) and a strategy's added parameters
// (Strategy::added_parameters_from). Each rank reads the hyperslabs of its own shards, whatever
// layout saved the file. Not collective.
#pragma once

#include <cstdint>
#include <string>

#include "core/model.h"
#include "core/strategy.h"

namespace shardtune::launch {

// Before the strategy is applied: the base weights. A self-contained checkpoint loads every
// parameter; a strategy checkpoint (base_model set) loads its base first (recursively; a seeded
// base must equal `seed`, [train] seed).
void load_base_weights(const std::string& checkpoint, core::CausalLMImpl& model, uint64_t seed);

// After the strategy is applied: the tensors of its added parameters from the checkpoint that
// Strategy::added_parameters_from() names. No-op when it names none.
void load_added_parameters(const core::Strategy& strategy, core::CausalLMImpl& model);

// After the strategy is applied: a strategy checkpoint's own parameters (adapters, unfrozen
// weights). No-op for a self-contained checkpoint.
void load_strategy_weights(const std::string& checkpoint, core::CausalLMImpl& model);

}  // namespace shardtune::launch
