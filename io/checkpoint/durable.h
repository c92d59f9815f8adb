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

// 16 random hex digits (per process stream, seeded from the OS): unique temporary names.
std::string unique_suffix();

// open(O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644): a new file or -1 (errno set); never an
// existing file, never through a symbolic link.
int create_exclusive(const std::string& path);

// Replaces `target` with `content` through a new, exclusively created `target`.<random>.tmp +
// fsync + durable_rename (a planted file or symlink at a predictable name cannot be written
// through). UserError naming the file on failure; the temporary never survives a failure.
void atomic_write_text(const std::string& target, const std::string& content);

}  // namespace shardtune::io
