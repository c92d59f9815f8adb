// Training checkpoints on top of io/checkpoint.h: what a checkpoint of a run holds (trainable
// parameters, their AdamW state, per-rank RNG streams, sampler position, step counts and a
// reference to the base model when some parameters are frozen), which rank writes which piece,
// and how a run resumes from one at any TP x DP layout (docs/checkpoint-format.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/batch.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/strategy.h"
#include "core/zero_optimizer.h"
#include "io/checkpoint.h"
#include "io/tokenizer.h"
#include "launch/config.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

// The pieces of a Trainer a checkpoint reads and writes.
struct TrainingState {
  const Config& config;
  parallel::RankGrid& grid;
  core::CausalLMImpl& model;
  core::Strategy& strategy;
  const std::vector<core::NamedParameter>& trainable;
  core::AdamW* adamw = nullptr;     // one of adamw / zero is set
  core::ZeroAdamW* zero = nullptr;
  core::DistributedSampler& sampler;
  const io::Tokenizer& tokenizer;
  int64_t& steps_done;
};

// The base-model reference a checkpoint of this run records: "" when every parameter is trainable
// (the file is self-contained), "seed:<n>" for the seeded initialisation, or "<init_from file>
// digest:<hex>".
std::string base_model_reference(const Config& config, core::CausalLMImpl& model);

// Collective over the world: writes the checkpoint of the current step; returns its path.
std::string save_training_checkpoint(TrainingState& s);

// The checkpoint [checkpoint] resume names: "auto" = <checkpoint dir>/latest if it exists (else
// "", a fresh start), otherwise a file or directory that must exist.
std::string resume_file(const Config& config);

// Not collective (run inside the CLI's agreement round): checks that the file belongs to this run
// (model config, strategy and options, tokenizer, base model) and restores parameters, optimizer
// state and step, sampler position, and, when the layout is the one saved, the RNG streams.
void load_training_checkpoint(const std::string& file, TrainingState& s);

// UserError naming the file when `saved` was written by another model, strategy, strategy options
// or tokenizer than `expected` describes.
void require_compatible(const std::string& file, const io::CheckpointInfo& saved,
                        const io::CheckpointInfo& expected);

// [checkpoint] init_from, before the strategy is applied: the base weights. A self-contained
// checkpoint loads every parameter; a strategy checkpoint (base_model set) loads its base first
// (recursively; "seed:<n>" must equal [train] seed).
void load_base_weights(const std::string& checkpoint, core::CausalLMImpl& model,
                       uint64_t seed);
// [checkpoint] init_from, after the strategy is applied: a strategy checkpoint's own parameters
// (adapters, unfrozen weights). No-op for a self-contained checkpoint.
void load_strategy_weights(const std::string& checkpoint, core::CausalLMImpl& model);

}  // namespace shardtune::launch
