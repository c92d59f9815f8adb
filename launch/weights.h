// Weights from files into a model at start: [model] from_hf (a Hugging Face folder), [checkpoint]
// init_from (the base before a strategy is applied, then a strategy checkpoint's own tensors) and
// a strategy's added parameters (Strategy::added_parameters_from: a checkpoint, or a PEFT adapter
// folder). Each rank reads the hyperslabs of its own shards, whatever layout saved the file. Not
// collective: every rank reads the same files in the same order.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "core/model.h"
#include "core/strategy.h"

namespace shardtune::launch {

// [model] from_hf = DIR: the run's [model] architecture from DIR/config.json (io/hf_config.h).
// `configured` is [model] as parsed; `explicit_keys` the [model] keys the user set (config file
// or command line): each must equal config.json's value (UserError naming the key and both values
// otherwise), except dropout (a training choice, kept from `configured`).
core::ModelConfig model_config_from_hf(const std::string& dir, const core::ModelConfig& configured,
                                       const std::set<std::string>& explicit_keys);

// The base-model reference of a from_hf run's checkpoints: "hf:<absolute DIR> digest:<hex>".
std::string hf_base_reference(const std::string& dir);

// Before the strategy is applied: the weights of DIR (io::load_hf_weights, each rank its TP
// slices); logs what was loaded on rank 0 of the model's TP group.
void load_hf_base(const std::string& dir, core::CausalLMImpl& model);

// Before the strategy is applied: the base weights. A self-contained checkpoint loads every
// parameter; a strategy checkpoint (base_model set) loads its base first (recursively; a seeded
// base must equal `seed`, [train] seed; an "hf:" base is loaded from its folder after its digest
// is checked).
void load_base_weights(const std::string& checkpoint, core::CausalLMImpl& model, uint64_t seed);

// After the strategy is applied: the tensors of its added parameters from what
// Strategy::added_parameters_from() names: a checkpoint, or a PEFT adapter folder (its
// adapter_config.json; io/peft_import.h): LoRA into a lora strategy (r, alpha and rslora must be
// the strategy's), prefix tuning into ptuning-v2. No-op when it names none.
void load_added_parameters(const core::Strategy& strategy, core::CausalLMImpl& model);

// After the strategy is applied: a strategy checkpoint's own parameters (adapters, unfrozen
// weights). No-op for a self-contained checkpoint.
void load_strategy_weights(const std::string& checkpoint, core::CausalLMImpl& model);

}  // namespace shardtune::launch
