// Token datasets: tokenized documents in one HDF5 file, written by `shardtune preprocess` and read
// by training ([data] source = tokenized) without tokenizing again.
//
// Layout (format "shardtune-token-dataset", version 1; docs/data.md):
//   /tokens       [N] uint16 when vocab_size <= 65536, else uint32: every document's ids, in order
//   /loss_mask    [N] uint8: 1 where the token is a training target, 0 where its label is -100
//   /doc_offsets  [D + 1] int64: document d is tokens [doc_offsets[d], doc_offsets[d + 1])
//   root attributes: format, format_version, vocab_size, tokenizer (identity), chat_template,
//   train_on_prompt, source, documents, tokens
// Datasets are contiguous and unfiltered, so each rank writes its documents' range in place.
//
// The file is untrusted when read: every attribute and dataset is checked (names, types, ranks,
// lengths, offsets from 0 to N without decreasing, mask values, ids below vocab_size, storage
// sizes matching the shapes) before anything is allocated from its sizes; one UserError names the
// file and what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/example.h"
#include "parallel/communicator.h"

namespace shardtune::io {

inline constexpr int kTokenDatasetFormatVersion = 1;
inline constexpr const char* kTokenDatasetFormat = "shardtune-token-dataset";

struct TokenDatasetInfo {
  int64_t vocab_size = 0;         // every id is below this
  std::string tokenizer;          // identity of the tokenizer that made the ids
  std::string chat_template = "none";
  bool train_on_prompt = false;
  std::string source;             // what was tokenized (the JSONL path)
  int64_t documents = 0;          // filled by the writer and the reader
  int64_t tokens = 0;
  std::string token_type;         // "uint16" or "uint32" (reader)
};

// Collective over `world`: every rank passes its own documents, rank r's following rank r-1's in
// the file. Examples must have labels[i] equal to tokens[i] or -100, ids in [0, vocab_size).
// Writes `path` through a temporary name (fsynced, renamed by rank 0); UserError on every rank
// when any rank fails. Returns the info as written (documents and tokens totals filled in).
TokenDatasetInfo write_token_dataset(const std::string& path, const TokenDatasetInfo& info,
                                     const std::vector<core::Example>& documents,
                                     parallel::Communicator& world);

struct TokenDataset {
  TokenDatasetInfo info;
  std::vector<core::Example> documents;  // labels rebuilt from the mask (-100 where it is 0)
};

// Reads every document, each cut to its first `max_len` tokens when max_len > 0 (as training
// truncates JSONL examples). Not collective.
TokenDataset read_token_dataset(const std::string& path, int64_t max_len = 0);

// Only the attributes (checked as above).
TokenDatasetInfo read_token_dataset_info(const std::string& path);

}  // namespace shardtune::io
