// Durable files (internal to io/): content reaches the disk before it becomes visible under its
// final name, so a crash at any moment leaves either the old file or the new one, never a torn one.
// The protocol is POSIX's: write a temporary name, fsync it, rename it over the target, fsync the
// directory (which makes the rename itself durable).
#pragma once

#include <string>

namespace shardtune::io {

// fsync of a file or directory; false when it cannot be opened or synced.
bool fsync_path(const std::string& path, bool directory);

// Renames `from` to `to` and fsyncs the directory of `to`; UserError naming `to` on failure.
void durable_rename(const std::string& from, const std::string& to);

// Replaces `target` with `content` through `target`.tmp + fsync + durable_rename.
void atomic_write_text(const std::string& target, const std::string& content);

}  // namespace shardtune::io
