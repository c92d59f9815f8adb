// ZeRO stage 1's partition (Rajbhandari et al. 2020), beside the bucketed gradient sync whose
// buckets it partitions. With GradSync in sharded mode, every flat gradient bucket is padded to a
// multiple of the DP size and reduce-scattered, so DP rank r holds the summed gradient of elements
// [r * S, (r + 1) * S) of each bucket (S = padded numel / dp). This class gives each bucket a flat
// parameter buffer with the same layout, re-points the parameters at views of it, and moves
// per-bucket shards to and from full per-parameter tensors. The optimizer arithmetic on the shards
// is core/'s (core::ZeroAdamW); this is the partition and its communication.
//
// Collective methods (gather_async, gather_full) run over the DP group: every rank calls them in
// the same order, bucket by bucket.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/grad_sync.h"

namespace shardtune::parallel {

class ZeroPartition {
 public:
  // `params` in `sync`'s order (sync must be in sharded mode over them and `dp`). Each parameter's
  // data becomes a view of its bucket's flat parameter buffer (values kept), so the parameter
  // all-gather writes the model's tensors in place. sync and dp must outlive this object.
  ZeroPartition(std::vector<torch::Tensor> params, GradSync& sync, Communicator& dp);

  int64_t num_buckets() const { return sync_.num_buckets(); }
  // Elements of every bucket this rank owns: bucket_numel / dp.
  int64_t shard_numel(int64_t bucket) const;
  // This rank's slice of bucket b's flat parameters (a view: updating it updates the parameters
  // after the gather), and of its reduced gradient (GradSync::shard_grad).
  torch::Tensor param_shard(int64_t bucket);
  torch::Tensor& grad_shard(int64_t bucket) const { return sync_.shard_grad(bucket); }

  // One flag per parameter as this rank's shard of every bucket: a bool tensor per bucket
  // [shard_numel] (padding false). E.g. which elements take weight decay or count in a norm.
  std::vector<torch::Tensor> shard_masks(const std::vector<bool>& flags) const;
  // A zero tensor per bucket [shard_numel] (optimizer state), in the parameters' dtype.
  std::vector<torch::Tensor> zero_shards() const;

  // Collective: starts the all-gather of bucket b's updated parameter shard into its flat buffer.
  WorkPtr gather_async(int64_t bucket);
  // Collective: full per-parameter tensors (parameter shapes, params order) from per-bucket shards.
  std::vector<torch::Tensor> gather_full(const std::vector<torch::Tensor>& shards);
  // Not collective: the inverse. Every rank passes full per-parameter tensors and gets its shard
  // of every bucket copied into `shards`.
  void scatter_full(const std::vector<torch::Tensor>& full,
                    std::vector<torch::Tensor>& shards) const;

 private:
  std::vector<torch::Tensor> params_;
  GradSync& sync_;
  Communicator& dp_;
  std::vector<torch::Tensor> flat_params_;  // per bucket, padded
};

}  // namespace shardtune::parallel
