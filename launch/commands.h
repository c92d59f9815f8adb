// The subcommands of `shardtune`, in one table. A command is standalone (one process, no MPI:
// `ckpt inspect`), a world command (every rank, after the configuration is agreed on, with no
// model: `preprocess`), or a run (every rank, after the set-up of launch/cli.cpp has built the
// rank grid and a Trainer). Adding a command is its file pair (launch/cmd_<name>.{h,cpp}) and one line
// in commands() (launch/commands.cpp).
#pragma once

#include <string>
#include <vector>

#include "launch/config.h"
#include "launch/trainer.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

// What a run command gets on every rank.
struct RunContext {
  Trainer& trainer;
  parallel::RankGrid& grid;
  bool root;  // world rank 0: the rank that prints results
};

// What a world command gets on every rank: the agreed configuration and the world.
struct WorldContext {
  const Config& config;
  parallel::Communicator& world;
  bool root;
};

struct Command {
  const char* name;
  const char* usage;  // the command's lines in `shardtune --help` (indented, "\n"-terminated)
  // Standalone: gets the arguments after the command name, returns the exit code. UserError ends
  // it with exit code 2 and one line.
  int (*standalone)(const std::vector<std::string>& args) = nullptr;
  // Run: called on every rank; the Trainer has loaded [checkpoint] init_from, which a command
  // with needs_checkpoint requires.
  void (*run)(RunContext& context) = nullptr;
  bool needs_checkpoint = false;
  bool stop_signals = false;  // SIGINT/SIGTERM/SIGUSR1 finish the step, save, exit 75
  // Writes checkpoints: at start-up the run claims and probes its checkpoint directory
  // (launch/resume.h prepare_checkpoints).
  bool saves_checkpoints = false;
  // World: called on every rank once the configuration is agreed on, before any model is built;
  // returns the exit code. It agrees on its errors phase by phase (launch/agree.h agree()).
  int (*world_run)(WorldContext& context) = nullptr;
};

const std::vector<Command>& commands();
// nullptr for an unknown name.
const Command* find_command(const std::string& name);
// The usage text: commands and the documented environment variables (base/env.h).
std::string usage();

// Standalone commands' entry points (launch/cmd_<name>.cpp).
int cmd_ckpt(const std::vector<std::string>& args);

}  // namespace shardtune::launch
