// Sequence packing ([data] packing = true): short training examples are laid back to back in rows
// of up to seq_len tokens, so a step spends its compute on tokens instead of padding. Each
// document keeps its own attention (core/layers.h: a token sees only earlier tokens of its
// document) and positions (counted from its start), and no token is trained to predict the next
// document's first token: a packed row's loss is the sum of its documents' losses.
#pragma once

#include <cstdint>
#include <vector>

#include "core/example.h"

namespace shardtune::io {

// Greedy packing in order: each example joins the current row while the row stays within
// `row_tokens`, else starts the next row. Examples must already be at most row_tokens long
// (tokenization truncates to seq_len). Each document's first label becomes kIgnoreIndex (it would
// be predicted by the previous document's last token; in an unpacked example nothing predicts it).
// Rows of one document keep `documents` empty. Identical input gives identical rows on every rank.
std::vector<core::Example> pack_examples(std::vector<core::Example> examples, int64_t row_tokens);

}  // namespace shardtune::io
