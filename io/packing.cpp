#include "io/packing.h"

#include <string>

#include "base/errors.h"

namespace shardtune::io {

std::vector<core::Example> pack_examples(std::vector<core::Example> examples, int64_t row_tokens) {
  require(row_tokens > 0, "[data] packing needs [train] seq_len > 0");
  std::vector<core::Example> rows;
  core::Example row;
  auto finish_row = [&] {
    if (row.tokens.empty()) return;
    if (row.documents.size() == 1) row.documents.clear();
    rows.push_back(std::move(row));
    row = core::Example{};
  };
  for (auto& e : examples) {
    const auto n = static_cast<int64_t>(e.tokens.size());
    if (n == 0) continue;
    require(e.documents.empty(), "packing: an example is packed twice");
    require(n <= row_tokens, "packing: an example of " + std::to_string(n) +
                                 " tokens does not fit a row of " + std::to_string(row_tokens));
    if (static_cast<int64_t>(row.tokens.size()) + n > row_tokens) finish_row();
    row.tokens.insert(row.tokens.end(), e.tokens.begin(), e.tokens.end());
    row.labels.insert(row.labels.end(), e.labels.begin(), e.labels.end());
    row.labels[row.labels.size() - static_cast<size_t>(n)] = core::kIgnoreIndex;
    row.documents.push_back(n);
  }
  finish_row();
  return rows;
}

}  // namespace shardtune::io
