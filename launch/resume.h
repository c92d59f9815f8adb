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
#include "core/example.h"
#include "launch/config.h"
#include "parallel/communicator.h"
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
  // The training examples, for the data fingerprint a checkpoint records and a resume compares
  // (nullptr: not recorded, not compared).
  const std::vector<core::Example>* train_data = nullptr;
};

// Collective over `world` (every rank, the same config): the checkpoint side of a run's start-up,
// in agreement rounds (launch/agree.h), so that a failure on any rank ends every rank with one
// line and no rank waits in a collective another skipped:
//  1. rank 0 resolves [checkpoint] resume and init_from to files and computes their identities
//     (io::checkpoint_identity). When the command saves (`saves`), it also fixes the run id (the
//     resumed checkpoint's, or a new one), claims the checkpoint directory (claim_checkpoint_dir)
//     and writes a probe file there;
//  2. rank 0's answers are broadcast; every rank confirms it sees the same files (same identity)
//     and, when saving, rank 0's probe (the same directory), and writes its own probe (it can
//     write there);
//  3. rank 0 sees every rank's probe; the probes are removed.
// So ranks with node-local or differently mounted directories fail at start-up, in seconds. On
// success `config` names the files rank 0 resolved (checkpoint.resume, checkpoint.init_from) and
// carries checkpoint.run_id. Returns 0 or the agreed exit code (the error printed once).
int prepare_checkpoints(parallel::Communicator& world, Config& config, bool saves);

// Rank 0's part of claiming a checkpoint directory for a run: returns the run id (`resumed_run`
// when resuming a checkpoint that has one, otherwise a new random id) after checking that every
// step file of `dir` belongs to that run (a resumed checkpoint without run id, format 1-2, lets
// id-less files stay). Another run's files are a UserError naming one of them, unless
// `overwrite`, which deletes them (their names appended to `deleted`). Files that cannot be read
// count as another run's.
std::string claim_checkpoint_dir(const std::string& dir, bool resuming,
                                 const std::string& resumed_run, bool overwrite,
                                 std::vector<std::string>* deleted);

// A new run id: 32 random hex digits.
std::string new_run_id();

// A digest (16 hex digits) of the training examples: their count, tokens and labels.
std::string data_fingerprint(const std::vector<core::Example>& examples);

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
// (io::require_compatible, the base model, and the data fingerprint: changed training data are
// an error unless [checkpoint] allow_data_change, then a warning) and restores parameters,
// optimizer state and step, sampler position, and, when the layout is the one saved, the RNG
// streams.
void load_training_checkpoint(const std::string& file, TrainingState& s);

}  // namespace shardtune::launch
