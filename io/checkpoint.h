// HDF5 checkpoints, sharded. One file per checkpoint, <dir>/step-00000100.h5, written
// collectively with parallel HDF5 (MPI-IO) by every rank of the world: every tensor is a dataset
// at its global (logical) shape (/model/<HF name>, /optimizer/<HF name>/exp_avg, /rng/<stream>),
// each rank writes only the hyperslab its core::ShardSpec describes, and exactly one rank writes
// each piece. Sharded datasets are chunked with one chunk per shard; every piece (the slice one
// TP rank held when saving) carries a checksum, verified when it is read. Root attributes hold the
// run metadata (CheckpointInfo).
//
// Writes go to a temporary name, are fsynced on every rank and renamed by rank 0 after a barrier;
// then the text file <dir>/latest is replaced the same way. A crash at any moment leaves the
// previous checkpoint and `latest` valid.
//
// Reading is not collective: every rank opens the file read-only with the serial driver and reads
// the saved pieces that overlap its own spec, so a checkpoint saved at one TP x DP layout loads
// into any other. Layout documented in docs/checkpoint-format.md.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/shard.h"
#include "parallel/communicator.h"

namespace shardtune::io {

inline constexpr int kCheckpointFormatVersion = 2;

struct CheckpointInfo {
  int format_version = kCheckpointFormatVersion;
  std::string shardtune_version;
  std::string model_config;      // core::ModelConfig JSON
  std::string strategy;          // strategy name
  std::string strategy_options;  // JSON object of the strategy's options
  std::string tokenizer;         // tokenizer identity
  std::string layout;            // e.g. "tp=2,dp=1,zero=0"
  int64_t tp = 1, dp = 1, zero = 0;
  int64_t world = 1;             // ranks that wrote the file (rows of the /rng datasets)
  int64_t step = 0;
  int64_t consumed_samples = 0;  // core::DistributedSampler position
  int64_t sampler_seed = 0;
  int64_t optimizer_step = 0;    // AdamW step count (bias correction)
  // Frozen parameters are not stored: their source. "" = every parameter is in the file;
  // "seed:<n>" = the seeded initialisation; else "<checkpoint path> digest:<hex>" (init_from).
  std::string base_model;
};

// One tensor of a sharded save or load. `local` is this rank's tensor (padding included, as the
// model holds it); `spec` relates it to the global shape.
struct ShardedTensor {
  std::string path;        // "/model/model.norm.weight"
  torch::Tensor local;     // save: source; load: destination (filled in place)
  core::ShardSpec spec;
  bool write = true;       // save only: this rank writes its piece (exactly one rank per piece)
};

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

// Collective over `world` (same tensors, paths, global shapes and info on every rank). `world` is
// an MpiCommunicator (MPI-IO driver), or any communicator of size 1 (a world of one, MPI or not,
// writes through HDF5's serial POSIX driver: no MPI-IO layer between it and the disk). Writes the
// checkpoint of info.step into `dir`, updates `latest`, deletes the oldest step files beyond
// keep_last (0 = keep all). Every rank gets the file path, or the same UserError.
std::string save_sharded_checkpoint(const std::string& dir, const CheckpointInfo& info,
                                    const std::vector<ShardedTensor>& tensors,
                                    parallel::Communicator& world, int keep_last);

// Single-process save of full tensors (a world of one).
std::string save_checkpoint(const std::string& dir, const CheckpointInfo& info,
                            const std::vector<CheckpointTensor>& tensors, int keep_last);

// A checkpoint file, or a directory whose `latest` names one. Throws UserError when neither.
std::string resolve_checkpoint(const std::string& path);

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

// Checksum of a contiguous tensor's bytes: FNV-1a over 64-bit little-endian words in 4 interleaved
// lanes, combined (docs/checkpoint-format.md gives the exact definition).
uint64_t tensor_checksum(const torch::Tensor& tensor);

}  // namespace shardtune::io
