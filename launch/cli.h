// The `shardtune` command line: `shardtune <command> [--config FILE] [--section.key=value ...]`.
// run_cli is set-up (MPI, configuration, agreement, rank grid, Trainer), dispatch through the
// command table (launch/commands.h) and the error policy (launch/agree.h): bad input anywhere ends
// every rank with exit code 2 and one line naming the file/field, printed once, by the lowest rank
// that raised it.
#pragma once

#include "launch/hooks.h"

namespace shardtune::launch {

// Returns the process exit code. `hooks` is for test programs (launch/hooks.h); the shardtune
// executable passes none.
int run_cli(int argc, char** argv, const TestHooks& hooks = {});

}  // namespace shardtune::launch
