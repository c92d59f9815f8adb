// Parallel preprocessing: byte-range reads, per-rank encoding, the first error in file order
// agreed on every rank, then one collective token-dataset write.
#include "io/preprocess.h"

#include <torch/torch.h>

#include <algorithm>

#include "base/errors.h"

namespace shardtune::io {
namespace {

// Every rank learns the error of the lowest failing rank and throws it; no-op when none failed.
void agree_first_error(parallel::Communicator& world, const std::string& error) {
  auto first = torch::tensor({error.empty() ? int64_t{world.size()} : int64_t{world.rank()}},
                             torch::kLong);
  world.all_reduce(first, parallel::ReduceOp::kMin);
  const int root = static_cast<int>(first.item<int64_t>());
  if (root == world.size()) return;
  auto length = torch::tensor({static_cast<int64_t>(error.size())}, torch::kLong);
  world.broadcast(length, root);
  auto bytes = torch::zeros({length.item<int64_t>()}, torch::kUInt8);
  if (world.rank() == root) std::copy(error.begin(), error.end(), bytes.data_ptr<uint8_t>());
  world.broadcast(bytes, root);
  const auto* p = bytes.data_ptr<uint8_t>();
  throw UserError(std::string(p, p + bytes.numel()));
}

}  // namespace

PreprocessStats preprocess_jsonl(const std::string& input, const std::string& output,
                                 const TokenDatasetInfo& info, const DocumentEncoder& encode,
                                 parallel::Communicator& world) {
  std::vector<core::Example> documents;
  int64_t trained = 0, longest = 0;
  std::string error;
  try {
    const uint64_t size = jsonl_file_size(input);
    const auto cut = [&](int r) {
      return static_cast<uint64_t>(static_cast<unsigned __int128>(size) * static_cast<unsigned>(r) /
                                   static_cast<unsigned>(world.size()));
    };
    JsonlLineReader reader(input, cut(world.rank()), cut(world.rank() + 1));
    std::string line;
    int64_t line_no = 0;
    while (reader.next(line, line_no)) {
      if (is_blank_line(line)) continue;
      const std::string where = input + ":" + std::to_string(line_no);
      core::Example doc = encode(parse_jsonl_line(line, where), where);
      if (doc.tokens.empty()) throw UserError(where + ": the record encodes to no tokens");
      for (int64_t label : doc.labels) trained += label != core::kIgnoreIndex;
      longest = std::max<int64_t>(longest, static_cast<int64_t>(doc.tokens.size()));
      documents.push_back(std::move(doc));
    }
  } catch (const UserError& e) {
    error = e.what();
  }
  agree_first_error(world, error);
  auto counts = torch::tensor({static_cast<int64_t>(documents.size()), trained}, torch::kLong);
  world.all_reduce(counts, parallel::ReduceOp::kSum);
  auto max_len = torch::tensor({longest}, torch::kLong);
  world.all_reduce(max_len, parallel::ReduceOp::kMax);
  require(counts[0].item<int64_t>() > 0, input + ": no records");
  PreprocessStats stats;
  TokenDatasetInfo with_source = info;
  if (with_source.source.empty()) with_source.source = input;
  stats.info = write_token_dataset(output, with_source, documents, world);
  stats.trained_tokens = counts[1].item<int64_t>();
  stats.longest = max_len.item<int64_t>();
  return stats;
}

}  // namespace shardtune::io
