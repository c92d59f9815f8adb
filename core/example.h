// A tokenized training example, shared by io/ (which makes them) and core/ (which batches them).
// Kept free of LibTorch so that light headers can include it.
#pragma once

#include <cstdint>
#include <vector>

namespace shardtune::core {

// Label value that the loss ignores (prompt tokens, BOS, padding).
inline constexpr int64_t kIgnoreIndex = -100;

// tokens and per-position labels; labels[i] is the token at i, or kIgnoreIndex where the loss
// ignores it (the loss shifts: position i predicts labels[i + 1]).
//
// A packed example ([data] packing, io/packing.h) holds several documents back to back: `documents`
// lists their lengths (summing to tokens.size()), and each token attends only to earlier tokens of
// its own document, with positions counted from its document's start. Empty: one document.
struct Example {
  std::vector<int64_t> tokens;
  std::vector<int64_t> labels;
  std::vector<int64_t> documents;
};

}  // namespace shardtune::core
