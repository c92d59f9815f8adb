// Subcommands of the `shardtune` executable. Each returns the process exit code.
#pragma once

namespace shardtune::launch {

// Entry point: `shardtune <train|eval|generate|ckpt> [--config FILE] [--section.key=value ...]`.
// Bad input anywhere ends every rank with exit code 2 and one line naming the file/field; the
// message is printed once, by the lowest rank that raised it.
int run_cli(int argc, char** argv);

}  // namespace shardtune::launch
