#include "io/data.h"

#include <algorithm>
#include <memory>
#include <random>

#include "base/errors.h"
#include "io/augment.h"
#include "io/chat_template.h"

namespace shardtune::io {

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

// Pre-tokenized ids index the model's embedding: each must be below its vocabulary.
void check_token_ids(const std::vector<Record>& records, int64_t model_vocab, bool augmenting) {
  for (const auto& r : records) {
    if (r.input_ids.empty()) continue;
    require(!augmenting, r.where + ": [data] augment rewrites text; pre-tokenized records have none");
    for (size_t i = 0; i < r.input_ids.size(); ++i) {
      require(r.input_ids[i] < model_vocab,
              r.where + ": input_ids[" + std::to_string(i) + "] = " +
                  std::to_string(r.input_ids[i]) + " is not below the model's vocabulary size " +
                  std::to_string(model_vocab));
    }
  }
}

}  // namespace

void DataOptions::validate() const {
  require(source == "jsonl" || source == "wordnet" || source == "synthetic",
          "[data] source='" + source + "' is unknown (known: jsonl, wordnet, synthetic)");
  require(source != "jsonl" || !train_file.empty(),
          "[data] train_file is required when source=jsonl");
  require(wordnet_task == "glosses" || wordnet_task == "define" || wordnet_task == "lexname",
          "[data] wordnet_task='" + wordnet_task +
              "' is unknown (known: glosses, define, lexname)");
  require(wordnet_eval_percent >= 0 && wordnet_eval_percent < 100,
          "[data] wordnet_eval_percent must be in [0, 100)");
  parse_chat_template(chat_template, "[data] chat_template");
}

DataSets load_datasets(const DataOptions& d, int64_t seq_len, const core::Tokenizer& tokenizer,
                       int64_t model_vocab, uint64_t seed) {
  DataSets sets;
  std::vector<Record> train_records;
  require(d.augment.empty() || d.source != "synthetic",
          "[data] augment applies to text; source=synthetic has none");
  if (d.source == "synthetic") {
    const int64_t vocab = std::min(model_vocab, tokenizer.vocab_size());
    sets.train = synthetic(d.synthetic_samples, seq_len, vocab, seed);
    sets.eval = synthetic(std::min<int64_t>(d.max_eval_samples, 64), seq_len, vocab, seed + 1);
    return sets;
  }
  if (d.source == "jsonl") {
    train_records = read_jsonl(d.train_file);
    if (!d.eval_file.empty()) sets.eval_records = read_jsonl(d.eval_file);
  }
  std::vector<Synset> synsets;
  if (d.source == "wordnet" || d.augment.find("synonym") != std::string::npos) {
    synsets = read_wordnet(d.wordnet_dir);
  }
  if (d.source == "wordnet") {
    const auto task = d.wordnet_task == "define"    ? WordNetTask::kDefine
                      : d.wordnet_task == "lexname" ? WordNetTask::kLexname
                                                    : WordNetTask::kGlosses;
    train_records = wordnet_records(synsets, task, Split::kTrain, d.wordnet_eval_percent);
    sets.eval_records = wordnet_records(synsets, task, Split::kEval, d.wordnet_eval_percent);
  }
  check_token_ids(train_records, model_vocab, !d.augment.empty());
  check_token_ids(sets.eval_records, model_vocab, false);
  if (static_cast<int64_t>(sets.eval_records.size()) > d.max_eval_samples) {
    sets.eval_records.resize(static_cast<size_t>(d.max_eval_samples));
  }
  if (!d.augment.empty()) {
    // Training records only: held-out data stays as written.
    const Augmenter augmenter(
        synsets, parse_augment(d.augment, d.augment_rate, d.augment_seed, d.augment_copies));
    train_records = augmenter.expand(train_records);
  }
  std::unique_ptr<ChatTemplate> chat;
  if (const auto kind = parse_chat_template(d.chat_template, "[data] chat_template");
      kind != ChatTemplateKind::kNone) {
    chat = std::make_unique<ChatTemplate>(kind, tokenizer);
  }
  sets.train = tokenize_all(train_records, tokenizer, seq_len, d.train_on_prompt, chat.get());
  sets.eval = tokenize_all(sets.eval_records, tokenizer, seq_len, d.train_on_prompt, chat.get());
  return sets;
}

StrategyData::StrategyData(DataSets& sets, const DataOptions& options,
                           const core::Tokenizer& tokenizer, int64_t seq_len,
                           std::function<void(const std::string&)> report)
    : sets_(sets), options_(options), tokenizer_(tokenizer), seq_len_(seq_len),
      report_(std::move(report)) {}

std::vector<std::string> StrategyData::read_prompts(const std::string& path,
                                                    int64_t max_prompts) const {
  std::vector<std::string> prompts;
  for (const auto& r : read_jsonl(path)) {
    prompts.push_back(r.prompt.empty() ? r.response : r.prompt);
    if (max_prompts > 0 && static_cast<int64_t>(prompts.size()) == max_prompts) break;
  }
  return prompts;
}

core::Example StrategyData::tokenize(const std::string& prompt, const std::string& response,
                                     bool as_training_data) const {
  return io::tokenize(Record{prompt, response}, tokenizer_, seq_len_,
                      as_training_data && options_.train_on_prompt);
}

}  // namespace shardtune::io
