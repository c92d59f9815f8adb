// Shard specs: how each tensor of a model (parameter, adapter, optimizer state) is split across the
// tensor-parallel group, relative to its global (logical, unpadded) shape. One spec per tensor per
// rank; checkpoints use them to write/read hyperslabs of the global tensor, the initialiser to
// keep the slice of a full deterministic tensor, clipping to count replicated tensors once.
//
// A sharded dimension of global size N is seen as `parts` equal segments (parts > 1 for fused
// projections such as GPT-2's c_attn = [q | k | v]); each segment of n = N / parts entries is
// split in tp chunks of ceil(n / tp): rank r holds [r * chunk, r * chunk + length) of every
// segment. Only the vocabulary dimension uses an uneven split (then parts == 1): the last ranks'
// chunks are partly or wholly padding, which the local tensor still holds (so every rank has the
// same local shape) but which never reaches a checkpoint.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "parallel/tp_ops.h"

namespace shardtune::core {

struct ShardSpec {
  std::vector<int64_t> global_shape;  // logical shape (no padding)
  int dim = -1;                       // sharded dimension, -1 = replicated on every TP rank
  int64_t parts = 1;                  // segments of `dim` split the same way
  int64_t chunk = 0;                  // local entries per segment (real + padding)
  int64_t offset = 0;                 // first global index of this rank's slice in each segment
  int64_t length = 0;                 // real (non-padding) entries per segment, <= chunk

  bool sharded() const { return dim >= 0; }
  // Shape of the local tensor (padding included).
  std::vector<int64_t> local_shape() const;
  // "[512, 128] split dim 0 (3 parts) rows 128..256": for errors and `ckpt inspect`.
  std::string describe() const;
  bool operator==(const ShardSpec& o) const;
};

ShardSpec replicated_spec(std::vector<int64_t> global_shape);
// Split of `dim` across tp ranks as described above. Throws std::invalid_argument when parts > 1
// and a segment is not divisible by tp (callers validate the config first).
ShardSpec split_spec(std::vector<int64_t> global_shape, int dim, int tp_rank, int tp_size,
                     int64_t parts = 1);

// The real (non-padding) entries of a local tensor: a view [..., parts * length, ...].
torch::Tensor real_part(const torch::Tensor& local, const ShardSpec& spec);
// This rank's slice of a full (global-shape) tensor, as a contiguous tensor of real_part's shape.
torch::Tensor slice_of(const torch::Tensor& full, const ShardSpec& spec);
// Copies `full` into `local` (real entries; padding set to zero).
void assign_from_full(torch::Tensor& local, const torch::Tensor& full, const ShardSpec& spec);
// Gathers the global tensor from every TP rank's local tensor (collective over the TP group; every
// rank gets the result). Replicated specs return a copy of local.
torch::Tensor gather_full(const torch::Tensor& local, const ShardSpec& spec,
                          const parallel::TpGroup& tp);

// Modules whose parameters are sharded implement this (Linear, Embedding, LoRA adapters, prompt
// encoders): the spec of a parameter registered directly on this module, by its local name.
// Parameters of modules that do not implement it are replicated.
class ShardedModule {
 public:
  virtual ~ShardedModule() = default;
  virtual ShardSpec shard_spec(const std::string& param_name) const = 0;
};

// (full name, spec) for every parameter of `root`, in named_parameters() order.
std::vector<std::pair<std::string, ShardSpec>> parameter_specs(const torch::nn::Module& root);

}  // namespace shardtune::core
