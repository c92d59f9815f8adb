#include "launch/data.h"

#include <random>

#include "io/augment.h"
#include "io/wordnet.h"
#include "parallel/errors.h"

namespace shardtune::launch {

namespace {

// Megatron-style mock data: uniform random tokens, every position trained.
std::vector<core::Example> synthetic(int64_t count, int64_t seq_len, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<core::Example> out(static_cast<size_t>(count));
  for (auto& e : out) {
    e.tokens.resize(static_cast<size_t>(seq_len));
    for (auto& t : e.tokens) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
    e.labels = e.tokens;
  }
  return out;
}

}  // namespace

DataSets load_datasets(const Config& config, const io::Tokenizer& tokenizer) {
  const auto& d = config.data;
  const int64_t len = config.train.seq_len;
  DataSets sets;
  std::vector<io::Record> train_records;
  require(d.augment.empty() || d.source != "synthetic",
          "[data] augment applies to text; source=synthetic has none");
  if (d.source == "synthetic") {
    const int64_t vocab = std::min(config.model.vocab_size, tokenizer.vocab_size());
    sets.train = synthetic(d.synthetic_samples, len, vocab, config.train.seed);
    sets.eval = synthetic(std::min<int64_t>(d.max_eval_samples, 64), len, vocab,
                          config.train.seed + 1);
    return sets;
  }
  if (d.source == "jsonl") {
    train_records = io::read_jsonl(d.train_file);
    if (!d.eval_file.empty()) sets.eval_records = io::read_jsonl(d.eval_file);
  }
  std::vector<io::Synset> synsets;
  if (d.source == "wordnet" || d.augment.find("synonym") != std::string::npos) {
    synsets = io::read_wordnet(d.wordnet_dir);
  }
  if (d.source == "wordnet") {
    const auto task = d.wordnet_task == "define" ? io::WordNetTask::kDefine
                                                 : io::WordNetTask::kGlosses;
    train_records = io::wordnet_records(synsets, task, io::Split::kTrain, d.wordnet_eval_percent);
    sets.eval_records =
        io::wordnet_records(synsets, task, io::Split::kEval, d.wordnet_eval_percent);
  }
  if (static_cast<int64_t>(sets.eval_records.size()) > d.max_eval_samples) {
    sets.eval_records.resize(static_cast<size_t>(d.max_eval_samples));
  }
  if (!d.augment.empty()) {
    // Training records only: held-out data stays as written.
    const io::Augmenter augmenter(
        synsets, io::parse_augment(d.augment, d.augment_rate, d.augment_seed, d.augment_copies));
    train_records = augmenter.expand(train_records);
  }
  sets.train = io::tokenize_all(train_records, tokenizer, len, d.train_on_prompt);
  sets.eval = io::tokenize_all(sets.eval_records, tokenizer, len, d.train_on_prompt);
  return sets;
}

}  // namespace shardtune::launch
