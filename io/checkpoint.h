// HDF5 checkpoints, sharded: the package's public interface. One file per checkpoint,
// <dir>/step-00000100.h5, written collectively with parallel HDF5 (MPI-IO) by every rank of the
// world: every tensor is a dataset at its global (logical) shape (paths: checkpoint/schema.h),
// each rank writes only the hyperslab its core::ShardSpec describes, and exactly one rank writes
// each piece. Sharded datasets are chunked with one chunk per piece; every piece (the slice one TP
// rank held when saving, checkpoint/pieces.h) carries a checksum, verified when it is read. Root
// attributes hold the run metadata (CheckpointInfo).
//
// Writes go to a temporary name, are fsynced on every rank and renamed by rank 0 after a barrier;
// then the text file <dir>/latest is replaced the same way (checkpoint/durable.h). A crash at any
// moment leaves the previous checkpoint and `latest` valid.
//
// Reading is not collective: every rank opens the file read-only with the serial driver and reads
// the saved pieces that overlap its own spec, so a checkpoint saved at one TP x DP layout loads
// into any other. Layout documented in docs/checkpoint-format.md.
//
// The package: checkpoint/schema (paths, writers, metadata, compatibility), pieces (geometry),
// checksum, durable (files), hdf5 (handles and attributes), write.cpp, read.cpp, inspect.cpp.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint/checksum.h"
#include "io/checkpoint/schema.h"
#include "parallel/communicator.h"

namespace shardtune::io {

// Full-tensor form, for single-process callers and full reads.
struct CheckpointTensor {
  std::string path;
  torch::Tensor tensor;  // CPU; destination (shape checked) on load
};

struct TensorEntry {
  std::string path;
  std::vector<int64_t> shape;
  std::string dtype;
  std::string sharding;  // "replicated" or "dim 0 in 2 pieces" (as saved)
};

struct SaveOptions {
  // Delete the oldest step files of the directory beyond this many (0 = keep all).
  int keep_last = 0;
  // MPI-IO data transfers: independent (MPI_File_write_at per rank, the default: measured faster
  // on chunked datasets, docs/benchmarks-checkpoint.md) or collective (MPI_File_write_all).
  bool collective_transfer = false;
  // Test hook, empty in production: called on every rank after it wrote its data and before the
  // file is closed (tests kill a rank there to check that a torn write harms nothing).
  std::function<void(const std::string& dir, int64_t step, int rank)> before_close;
};

// Collective over `world` (same tensors, paths, global shapes and info on every rank). `world` is
// an MpiCommunicator (MPI-IO driver), or any communicator of size 1 (a world of one, MPI or not,
// writes through HDF5's serial POSIX driver: no MPI-IO layer between it and the disk). Writes the
// checkpoint of info.step into `dir`, updates `latest`, prunes per options.keep_last. Every rank
// gets the file path, or the same UserError.
std::string save_sharded_checkpoint(const std::string& dir, const CheckpointInfo& info,
                                    const std::vector<ShardedTensor>& tensors,
                                    parallel::Communicator& world, const SaveOptions& options);

// Single-process save of full tensors (a world of one).
std::string save_checkpoint(const std::string& dir, const CheckpointInfo& info,
                            const std::vector<CheckpointTensor>& tensors, int keep_last);

// A checkpoint file, or a directory whose `latest` names one. Throws UserError when neither.
std::string resolve_checkpoint(const std::string& path);

// The root attributes (format 1 and 2; UserError for other versions or missing fields).
CheckpointInfo read_checkpoint_info(const std::string& file);

// Not collective. Fills each tensor's local slice (spec) from the file, whatever layout saved it.
// Missing dataset, wrong shape or dtype, a bad checksum, an unreadable file: UserError naming the
// file and the tensor.
void load_sharded_tensors(const std::string& file, std::vector<ShardedTensor>& tensors);

// Fills each destination tensor (global shape) from the file; same errors.
void load_checkpoint_tensors(const std::string& file, std::vector<CheckpointTensor>& tensors);

// Whether the file holds a dataset at `path`.
bool checkpoint_has_tensor(const std::string& file, const std::string& path);

// Every dataset in the file, in path order (for `shardtune ckpt inspect`).
std::vector<TensorEntry> list_checkpoint_tensors(const std::string& file);

// A digest of the whole checkpoint's content (its datasets' checksums and shapes; cheap: no data
// read), for base-model references.
std::string checkpoint_digest(const std::string& file);

}  // namespace shardtune::io
