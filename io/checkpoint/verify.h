// Opening a checkpoint for reading (internal to io/checkpoint; free of LibTorch, fuzzed by
// tests/fuzz/fuzz_checkpoint.cpp): the one way every reader (tensors,
// info, listing, digest, inspect) gets at a file, so that each sees the same validated metadata.
// The file is hostile until proven otherwise: root attributes are read through the checked readers
// of hdf5.h and range-checked (validate_info), every dataset's piece attributes are checked against
// its shape, and a format-3 file's metadata checksum must match what was read. Only hard links are
// followed (a soft or external link could point anywhere).
#pragma once

#include <string>
#include <vector>

#include "io/checkpoint/geometry.h"
#include "io/checkpoint/hdf5.h"
#include "io/checkpoint/info.h"
#include "io/checkpoint/metadata.h"

namespace shardtune::io {

// One dataset's stored description, validated.
struct StoredMeta {
  DatasetMeta meta;
  Pieces pieces;         // format 2+: from its attributes; format 1: one piece
  bool format1 = false;  // the whole tensor's `fnv1a64` instead of per-piece checksums
  uint64_t fnv1a64 = 0;  // format 1
};

// Reads and validates the piece attributes (format 2+) or `fnv1a64` (format 1) of the dataset
// `ds` at `path`; UserError naming `where` when missing, mistyped or inconsistent with its shape.
StoredMeta read_stored_meta(hid_t ds, const std::string& path, const std::string& where,
                            int64_t format_version);

struct OpenedCheckpoint {
  h5::ReadFile file;
  CheckpointInfo info;
  std::vector<StoredMeta> datasets;  // every dataset, in path order
};

// Opens `file` read-only, reads and validates its metadata and every dataset's description, and
// verifies the metadata checksum (format 3: required). UserError naming the file otherwise.
OpenedCheckpoint open_checkpoint(const std::string& file);

}  // namespace shardtune::io
