// The live progress line of long stages (training steps) on rank 0. On a terminal it is one line
// rewritten in place; in a log (stdout is a file or pipe) it prints nothing, and the stage's plain
// lines (spdlog, every `log_every` steps) are the record. Any logged line first erases the live
// line (progress_sink), so the two never share a line.
#pragma once

#include <memory>
#include <string>

#include <spdlog/sinks/sink.h>

namespace shardtune::launch::progress {

// Rank 0 with stdout on a terminal. Decided by enable(); false until then.
bool live();
// Called once by the CLI after MPI start-up: the live line exists on `is_root` only.
void enable(bool is_root);
// Rewrites the live line with `text` (no-op when not live).
void show(const std::string& text);
// Erases the live line if one is shown.
void clear();

// A sink that erases the live line, then writes through `inner`.
std::shared_ptr<spdlog::sinks::sink> progress_sink(std::shared_ptr<spdlog::sinks::sink> inner);

}  // namespace shardtune::launch::progress
