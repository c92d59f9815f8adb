// Tokenized examples, padded batches and the data-parallel sampler.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/example.h"

namespace shardtune::core {


struct Batch {
  torch::Tensor input_ids;       // [B, T] int64, right-padded with pad_id
  torch::Tensor labels;          // [B, T] int64, -100 on padding
  torch::Tensor attention_mask;  // [B, T] int64: 0 = padding, else the token's document (1, 2, ...)
  int64_t targets = 0;           // counted targets (see count_targets)
};

// Pads to the longest example (or to `pad_to` when larger).
Batch collate(const std::vector<const Example*>& examples, int64_t pad_id, int64_t pad_to = 0);

// Deterministic data-parallel sampler. Each epoch is a permutation of [0, num_samples) drawn from
// (seed, epoch); global batch g of the epoch is positions [g*G, (g+1)*G); DP rank r takes the
// contiguous slice [r*G/dp, (r+1)*G/dp) of it. The trailing partial global batch of an epoch is
// dropped, so every step has exactly G samples. State = samples consumed so far.
class DistributedSampler {
 public:
  DistributedSampler(int64_t num_samples, int64_t global_batch, int dp_rank, int dp_size,
                     uint64_t seed);
  // Indices of this rank's share of the next global batch (global_batch / dp_size of them).
  std::vector<int64_t> next();
  int64_t consumed_samples() const { return consumed_; }
  void set_consumed_samples(int64_t consumed);
  int64_t epoch() const;
  int64_t batches_per_epoch() const { return batches_per_epoch_; }

 private:
  void build_epoch(int64_t epoch);
  int64_t num_samples_, global_batch_;
  int dp_rank_, dp_size_;
  uint64_t seed_;
  int64_t batches_per_epoch_;
  int64_t consumed_ = 0;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

// Portable Fisher-Yates permutation from a seed (std::shuffle's output differs across standard
// libraries; this one does not).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

}  // namespace shardtune::core
