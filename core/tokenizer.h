// The Tokenizer interface: text <-> token ids. Implementations live in io/ (the built-in byte
// tokenizer in io/tokenizer.h; file-based ones beside it); core/ and strategies/ use this
// interface only (sampling, self-training), so they never depend on how a vocabulary is read.
// Free of LibTorch, so torch-free code may implement it (link shardtune_core_headers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardtune::core {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text -> ids, without BOS/EOS (callers add them).
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // Ids -> text; special ids are dropped.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  // Ids in [0, vocab_size()) (special ids included); the model's [model] vocab_size must be at
  // least this.
  virtual int64_t vocab_size() const = 0;
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  virtual int64_t pad_id() const = 0;
  // Stable identity string recorded in checkpoints, e.g. "byte-v1": a checkpoint resumes only
  // under a tokenizer of the same identity.
  virtual std::string identity() const = 0;
};

}  // namespace shardtune::core
