// Run configuration: INI sections per component plus --section.key=value overrides on the command
// line (command line wins). Each section's options are a struct owned by its component, with a
// doc line per field and one field list (fields()) that generates everything here: the
// Boost.Program_options table (`shardtune train --help`), the resolved printout (to_ini), the INI
// round trip, and the hash ranks compare at start.
//
//   [model]      core::ModelConfig        core/model_config.h
//   [train]      core::TrainOptions       core/train_options.h
//   [data]       io::DataOptions          io/data.h
//   [strategy]   name + [strategy.<name>] free-form keys, parsed by the strategy itself
//   [checkpoint] io::CheckpointOptions    io/checkpoint/options.h
//   [parallel]   parallel::ParallelOptions parallel/options.h
//   [generate]   GenerateConfig           launch/cmd_generate.h
//   [export]     ExportOptions            launch/cmd_export.h
//
// [model] from_hf (io::ModelSource) replaces the [model] architecture with DIR/config.json's when
// the configuration is parsed (launch/weights.h model_config_from_hf).
//
// A new option is one member and one fields() line in its component's struct. A section key
// owned by another component (e.g. a [model] key read by io/) comes from that component's struct,
// visited in the same section in Config::visit (`c.model.fields(v); c.other.fields(v);`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/strategy.h"
#include "core/train_options.h"
#include "io/checkpoint/options.h"
#include "io/data.h"
#include "io/hf_config.h"
#include "launch/cmd_export.h"
#include "launch/cmd_generate.h"
#include "parallel/options.h"

namespace shardtune::launch {

struct Config {
  std::string config_file;  // the --config file, if any (not an option itself)
  core::ModelConfig model;
  io::ModelSource model_source;  // [model] from_hf
  core::TrainOptions train;
  io::DataOptions data;
  std::string strategy = "sft";
  core::StrategyOptions strategy_options;
  io::CheckpointOptions checkpoint;
  parallel::ParallelOptions parallel;
  GenerateConfig generate;
  ExportOptions export_options;

  // Every section in order. A visitor has section(name, title), operator()(key, member, doc) for
  // each option and free_options(section, map) for [strategy.<name>].
  template <typename V>
  void sections(V&& v) { visit(*this, v); }
  template <typename V>
  void sections(V&& v) const { visit(*this, v); }

  std::string checkpoint_dir() const;
  // Every section's checks plus the cross-section ones (micro_batch divides the per-rank batch,
  // seq_len fits the model, ...); UserError naming the field.
  void validate(int world) const;
  // The resolved configuration in INI form (every section, [generate] included; the checkpoint
  // directory resolved), printed by rank 0 at start. Parsing it back gives the same configuration.
  std::string to_ini() const;
  // FNV-1a 64 of to_ini(): ranks compare it at start to refuse differing configurations.
  uint64_t hash() const;

 private:
  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v.section("model", "[model] architecture");
    c.model.fields(v);
    c.model_source.fields(v);
    v.section("train", "[train] optimisation");
    c.train.fields(v);
    v.section("data", "[data] input");
    c.data.fields(v);
    v.section("strategy", "[strategy] fine-tuning policy");
    v("name", c.strategy,
      "sft | lora | ptuning-v2 | freeze (options in [strategy.<name>], docs/strategies.md)");
    v.free_options("strategy." + c.strategy, c.strategy_options);
    v.section("checkpoint", "[checkpoint] saving and loading");
    c.checkpoint.fields(v);
    v.section("parallel", "[parallel] layout");
    c.parallel.fields(v);
    v.section("generate", "[generate] sampling (shardtune generate)");
    c.generate.fields(v);
    v.section("export", "[export] shardtune export");
    c.export_options.fields(v);
  }
};

// Parses `args` (everything after the subcommand): --config FILE, --section.key=value, and the
// short forms --resume auto|PATH (--checkpoint.resume=...), --format F, --out DIR and --dtype D
// (--export.format/out/dtype). With [model] from_hf set, [model] becomes DIR/config.json's
// architecture (UserError when an explicitly set [model] key contradicts it).
// Returns false and fills `help` when --help was asked for.
bool parse_config(const std::vector<std::string>& args, Config& config, std::string& help);

}  // namespace shardtune::launch
