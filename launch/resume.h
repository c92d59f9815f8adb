// Training checkpoints: a Trainer's state into and out of the checkpoint schema
// (io/checkpoint/schema.h): trainable parameters, their optimizer state, per-rank RNG streams,
// sampler position, step counts and a reference to the base model when some parameters are frozen.
// A run resumes from one at any TP x DP layout (docs/checkpoint-format.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/batch.h"
#include "core/model.h"
#include "core/strategy.h"
#include "core/training_step.h"
#include "io/checkpoint.h"
#include "launch/config.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

// The pieces of a Trainer a checkpoint reads and writes.
struct TrainingState {
  const Config& config;
  parallel::RankGrid& grid;
  core::CausalLMImpl& model;
  core::Strategy& strategy;
  core::TrainingStep& step;  // trainable parameters and their optimizer
  core::DistributedSampler& sampler;
  const core::Tokenizer& tokenizer;
  int64_t& steps_done;
  // Test hook (launch/hooks.h), empty in production.
  std::function<void(const std::string&, int64_t, int)> inside_write;
};

// The base-model reference a checkpoint of this run records: "" when every parameter is trainable
// (the file is self-contained), the seeded initialisation, the init_from file with its digest, or
// the [model] from_hf folder with its digest.
std::string base_model_reference(const Config& config, core::CausalLMImpl& model);

// Collective over the world: writes the checkpoint of the current step; returns its path.
std::string save_training_checkpoint(TrainingState& s);

// The checkpoint [checkpoint] resume names: "auto" = <checkpoint dir>/latest if it exists (else
// "", a fresh start), otherwise a file or directory that must exist.
std::string resume_file(const Config& config);

// Not collective (run inside the CLI's agreement round): checks that the file belongs to this run
// (io::require_compatible, and the base model) and restores parameters, optimizer state and step,
// sampler position, and, when the layout is the one saved, the RNG streams.
void load_training_checkpoint(const std::string& file, TrainingState& s);

}  // namespace shardtune::launch
