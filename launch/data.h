// Assembles the train and eval example sets for a Config: reads the source (JSONL, WordNet or
// synthetic random tokens), tokenizes, truncates to seq_len.
#pragma once

#include <memory>
#include <vector>

#include "core/batch.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "launch/config.h"

namespace shardtune::launch {

struct DataSets {
  std::vector<core::Example> train;
  std::vector<core::Example> eval;
  std::vector<io::Record> eval_records;  // untokenized eval records (generation references)
};

DataSets load_datasets(const Config& config, const io::Tokenizer& tokenizer);

}  // namespace shardtune::launch
