// HDF5 checkpoints. One file per checkpoint, <dir>/step-00000100.h5, every tensor at its global
// shape under a group path (/model/<HF name>, /optimizer/<HF name>/exp_avg, ...), root
// attributes for run metadata, an FNV-1a-64 checksum attribute per dataset (verified on load).
// Writes go to a temporary name, are fsynced and renamed, then the text file <dir>/latest is
// replaced the same way: a crash at any moment leaves the previous checkpoint and `latest` valid.
// Layout documented in docs/checkpoint-format.md.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace shardtune::io {

inline constexpr int kCheckpointFormatVersion = 1;

struct CheckpointInfo {
  int format_version = kCheckpointFormatVersion;
  std::string shardtune_version;
  std::string model_config;  // core::ModelConfig JSON
  std::string strategy;      // strategy name
  std::string tokenizer;     // tokenizer identity
  std::string layout;        // e.g. "tp=1,dp=1"
  int64_t step = 0;
  int64_t consumed_samples = 0;
};

struct CheckpointTensor {
  std::string path;     // "/model/model.norm.weight"
  torch::Tensor tensor; // CPU, contiguous on save; destination (shape checked) on load
};

struct TensorEntry {
  std::string path;
  std::vector<int64_t> shape;
  std::string dtype;
};

// Writes the checkpoint of `step` into `dir` (created if needed), updates `latest`, then deletes
// the oldest step files beyond keep_last (0 = keep all). Returns the file path.
std::string save_checkpoint(const std::string& dir, const CheckpointInfo& info,
                            const std::vector<CheckpointTensor>& tensors, int keep_last);

// A checkpoint file, or a directory whose `latest` names one. Throws UserError when neither.
std::string resolve_checkpoint(const std::string& path);

CheckpointInfo read_checkpoint_info(const std::string& file);

// Fills each destination tensor from the file. Missing dataset, wrong shape or dtype, or a
// checksum mismatch: UserError naming the file and the tensor.
void load_checkpoint_tensors(const std::string& file, std::vector<CheckpointTensor>& tensors);

// Every dataset in the file, in path order (for `shardtune ckpt inspect`).
std::vector<TensorEntry> list_checkpoint_tensors(const std::string& file);

// FNV-1a 64-bit hash of a contiguous tensor's bytes.
uint64_t tensor_checksum(const torch::Tensor& tensor);

}  // namespace shardtune::io
