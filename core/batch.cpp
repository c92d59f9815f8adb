#include "core/batch.h"

#include <algorithm>

#include "base/errors.h"
#include "core/loss.h"

namespace shardtune::core {

Batch collate(const std::vector<const Example*>& examples, int64_t pad_id, int64_t pad_to) {
  int64_t len = pad_to;
  for (const auto* e : examples) len = std::max<int64_t>(len, static_cast<int64_t>(e->tokens.size()));
  const int64_t b = static_cast<int64_t>(examples.size());
  auto ids = torch::full({b, len}, pad_id, torch::kLong);
  auto labels = torch::full({b, len}, kIgnoreIndex, torch::kLong);
  auto mask = torch::zeros({b, len}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto labels_a = labels.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& e = *examples[i];
    // Document ids: 1 for an unpacked example, 1, 2, ... along a packed one.
    int64_t document = 1, document_end = e.documents.empty()
                                             ? static_cast<int64_t>(e.tokens.size())
                                             : e.documents.front();
    for (size_t j = 0; j < e.tokens.size(); ++j) {
      while (static_cast<int64_t>(j) >= document_end &&
             document < static_cast<int64_t>(e.documents.size())) {
        document_end += e.documents[static_cast<size_t>(document++)];
      }
      ids_a[i][j] = e.tokens[j];
      labels_a[i][j] = e.labels[j];
      mask_a[i][j] = document;
    }
  }
  Batch batch{ids, labels, mask, 0};
  batch.targets = len > 1 ? count_targets(labels) : 0;
  return batch;
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);  // mt19937_64's output sequence is fixed by the standard
  for (int64_t i = n - 1; i > 0; --i) {
    // Unbiased bounded draw by rejection (uniform_int_distribution is library-specific).
    const uint64_t bound = static_cast<uint64_t>(i) + 1;
    const uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
    uint64_t r;
    do {
      r = rng();
    } while (r >= limit);
    std::swap(order[i], order[r % bound]);
  }
  return order;
}

DistributedSampler::DistributedSampler(int64_t num_samples, int64_t global_batch, int dp_rank,
                                       int dp_size, uint64_t seed)
    : num_samples_(num_samples), global_batch_(global_batch), dp_rank_(dp_rank),
      dp_size_(dp_size), seed_(seed) {
  require(global_batch % dp_size == 0,
          "[train] global_batch=" + std::to_string(global_batch) +
              " is not divisible by the data-parallel size " + std::to_string(dp_size));
  require(num_samples >= global_batch,
          "dataset has " + std::to_string(num_samples) +
              " samples, fewer than one global batch ([train] global_batch=" +
              std::to_string(global_batch) + ")");
  batches_per_epoch_ = num_samples / global_batch;
}

int64_t DistributedSampler::epoch() const {
  return consumed_ / (batches_per_epoch_ * global_batch_);
}

void DistributedSampler::set_consumed_samples(int64_t consumed) {
  require(consumed % global_batch_ == 0,
          "sampler position " + std::to_string(consumed) + " is not a multiple of global_batch=" +
              std::to_string(global_batch_));
  consumed_ = consumed;
}

void DistributedSampler::build_epoch(int64_t epoch) {
  if (epoch == cached_epoch_) return;
  order_ = permutation(num_samples_, seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
  cached_epoch_ = epoch;
}

std::vector<int64_t> DistributedSampler::next() {
  const int64_t per_epoch = batches_per_epoch_ * global_batch_;
  const int64_t e = consumed_ / per_epoch;
  const int64_t start = consumed_ % per_epoch;
  build_epoch(e);
  const int64_t share = global_batch_ / dp_size_;
  const int64_t begin = start + dp_rank_ * share;
  std::vector<int64_t> out(order_.begin() + begin, order_.begin() + begin + share);
  consumed_ += global_batch_;
  return out;
}

}  // namespace shardtune::core
