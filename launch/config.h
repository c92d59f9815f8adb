// Run configuration: INI sections per component plus --section.key=value overrides on the command
// line (command line wins). Every option has a description (`shardtune train --help`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/strategy.h"

namespace shardtune::launch {

struct TrainOptions {
  int64_t steps = 100;
  int64_t global_batch = 8;      // samples per optimizer step, over all data-parallel ranks
  int64_t micro_batch = 8;       // samples per forward/backward on one rank
  int64_t seq_len = 128;         // examples are truncated to this many tokens
  double lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;        // max global L2 norm; 0 = off
  uint64_t seed = 1234;
  int64_t log_every = 10;
  int64_t eval_every = 0;        // 0 = evaluate only before and after training
  std::string out_dir = "runs/default";  // metrics.jsonl goes here
};

struct DataOptions {
  std::string source = "jsonl";  // jsonl | wordnet | synthetic
  std::string train_file;
  std::string eval_file;
  std::string tokenizer = "byte";
  bool train_on_prompt = false;
  int64_t max_eval_samples = 256;
  std::string wordnet_dir = "/usr/share/wordnet";
  std::string wordnet_task = "glosses";  // glosses | define
  int wordnet_eval_percent = 5;
  int64_t synthetic_samples = 1024;
  std::string augment;           // "", or a list of synonym | reorder (io/augment.h)
  double augment_rate = 0.1;     // synonym: per word; reorder: per text
  uint64_t augment_seed = 0;
  int64_t augment_copies = 1;    // augmented copies added per training record
};

struct CheckpointOptions {
  std::string dir;               // default: <out_dir>/checkpoints
  std::string init_from;         // checkpoint file or directory to load model weights from
  int64_t every = 0;             // save every N steps (0 = only at the end)
  bool save_final = true;
  int keep_last = 2;
  std::string resume;            // "auto" (<dir>/latest if any) or a checkpoint file/directory
};

struct ParallelOptions {
  int tp = 1;
  int zero = 0;
  double bucket_mb = 25.0;
};

struct GenerateConfig {
  std::vector<std::string> prompts;
  int64_t from_eval = 0;         // also generate for the first N eval prompts, with references
  int64_t max_new_tokens = 80;
  double temperature = 0.0;
  int64_t top_k = 0;
};

struct Config {
  std::string config_file;
  core::ModelConfig model;
  TrainOptions train;
  DataOptions data;
  std::string strategy = "sft";
  core::StrategyOptions strategy_options;
  CheckpointOptions checkpoint;
  ParallelOptions parallel;
  GenerateConfig generate;

  std::string checkpoint_dir() const;
  // Cross-field checks (micro_batch divides the per-rank batch, ...); UserError naming the field.
  void validate(int world) const;
  // The resolved configuration in INI form (printed by rank 0 at start).
  std::string to_ini() const;
};

// Parses `args` (everything after the subcommand): --config FILE, --section.key=value, and
// --resume auto|PATH (short for --checkpoint.resume=...).
// Returns false and fills `help` when --help was asked for.
bool parse_config(const std::vector<std::string>& args, Config& config, std::string& help);

}  // namespace shardtune::launch
