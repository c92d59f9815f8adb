// The command-line reference in Markdown (docs/cli.md), generated from the same sources as
// `shardtune --help`: the command table (launch/commands.cpp), every section's field list with its
// doc lines and defaults (launch/config.h), and the documented environment variables
// (base/env.h). `shardtune --help-markdown` prints it; tests/docs.cmake fails when docs/cli.md
// differs from it, so the reference cannot fall behind the code.
#pragma once

#include <string>

namespace shardtune::launch {

// Deterministic: depends only on the compiled-in tables and the defaults of Config.
std::string cli_reference_markdown();

}  // namespace shardtune::launch
