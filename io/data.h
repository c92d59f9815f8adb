// The data pipeline: [data] options, and the train and eval example sets they describe (JSONL,
// WordNet or synthetic random tokens; augmented, tokenized, truncated to seq_len), plus the view
// of them a strategy gets at data time (core::TrainingData).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/fields.h"
#include "core/example.h"
#include "core/strategy.h"
#include "core/tokenizer.h"
#include "io/dataset.h"
#include "io/preprocess.h"
#include "io/wordnet.h"

namespace shardtune::io {

// [data]: where examples come from and how they are labelled.
struct DataOptions : base::FieldList<DataOptions> {
  std::string source = "jsonl";
  std::string train_file;
  std::string eval_file;
  std::string tokenized_dir;
  std::string tokenizer = "byte";
  bool train_on_prompt = false;
  std::string chat_template = "none";
  int64_t max_eval_samples = 256;
  std::string wordnet_dir = kDefaultWordNetDir;
  std::string wordnet_task = "glosses";
  int wordnet_eval_percent = 5;
  int64_t synthetic_samples = 1024;
  std::string augment;
  double augment_rate = 0.1;
  uint64_t augment_seed = 0;
  int64_t augment_copies = 1;
  bool packing = false;

  // UserError naming the [data] field.
  void validate() const;

  // The field list (base/fields.h): every option once, with its doc line.
  template <typename Self, typename V>
  static void visit(Self& c, V& v) {
    v("source", c.source,
      "jsonl | wordnet | synthetic | tokenized (the token datasets of tokenized_dir, written by "
      "shardtune preprocess)");
    v("train_file", c.train_file,
      "JSONL training file ({text} | {prompt,response} | {instruction,input,output} | "
      "{messages} | {conversations} | {input_ids,labels})");
    v("eval_file", c.eval_file, "JSONL held-out file (optional)");
    v("tokenized_dir", c.tokenized_dir,
      "folder of token datasets (train.h5, eval.h5 when there is an eval_file): written by "
      "shardtune preprocess from train_file and eval_file, read when source=tokenized");
    v("tokenizer", c.tokenizer,
      "byte | none (pre-tokenized input_ids only) | a tokenizer file or Hugging Face model folder "
      "(default: the [model] from_hf folder when it holds a tokenizer, else byte)");
    v("train_on_prompt", c.train_on_prompt, "also put loss on prompt tokens");
    v("chat_template", c.chat_template,
      "none | chatml | llama3 | llama2 | alpaca: render supervised records (docs/data.md)");
    v("max_eval_samples", c.max_eval_samples, "evaluate on at most this many held-out samples");
    v("wordnet_dir", c.wordnet_dir, "WordNet database directory (Debian wordnet-base)");
    v("wordnet_task", c.wordnet_task,
      "glosses (language modelling) | define (\"define: WORD\" -> gloss) | lexname (gloss -> "
      "lexicographer category, e.g. noun.animal: a 45-way classification) | pos (gloss -> "
      "noun, verb, adjective or adverb, the four balanced)");
    v("wordnet_eval_percent", c.wordnet_eval_percent, "percent of synsets held out for evaluation");
    v("synthetic_samples", c.synthetic_samples,
      "number of random-token samples for source=synthetic");
    v("augment", c.augment,
      "training-data augmentation: synonym (WordNet), reorder (sentences), clause (clauses "
      "inside sentences), comma-separated");
    v("augment_rate", c.augment_rate,
      "synonym: probability per word; reorder: probability per text");
    v("augment_seed", c.augment_seed, "seed of the augmentation (same seed, same augmented data)");
    v("augment_copies", c.augment_copies,
      "augmented copies added per training record (originals kept)");
    v("packing", c.packing,
      "pack training examples back to back into rows of seq_len tokens (each attends only within "
      "itself, positions restart per example); global_batch then counts rows");
  }
};

struct DataSets {
  std::vector<core::Example> train;
  std::vector<core::Example> eval;
  std::vector<Record> eval_records;  // untokenized eval records (generation references)
};

// The token dataset files of [data] tokenized_dir.
std::string tokenized_train_path(const DataOptions& options);
std::string tokenized_eval_path(const DataOptions& options);

// Reads, augments (training records only) and tokenizes what `options` describe, truncating
// examples to seq_len tokens. source=tokenized reads the token datasets instead, refusing one
// made with another tokenizer, chat template or train_on_prompt than `options` name, or holding
// ids outside the model's vocabulary. Synthetic data draws token ids below min(model_vocab, tokenizer
// vocabulary) from `seed`.
DataSets load_datasets(const DataOptions& options, int64_t seq_len,
                       const core::Tokenizer& tokenizer, int64_t model_vocab, uint64_t seed);

// What load_datasets makes of one JSONL record, before truncation to seq_len: the encoder of
// `shardtune preprocess` (io/preprocess.h), so that training on its token datasets sees exactly
// the tokens and labels training on the JSONL would. Ids of pre-tokenized records are checked
// against model_vocab; [data] augment is refused (augmentation draws over the whole record set).
DocumentEncoder jsonl_encoder(const DataOptions& options, const core::Tokenizer& tokenizer,
                              int64_t model_vocab);

// What a strategy sees at data time (core::TrainingData) over `sets.train`.
class StrategyData final : public core::TrainingData {
 public:
  // `report` prints one line to the run's log (the host decides where and on which rank).
  StrategyData(DataSets& sets, const DataOptions& options, const core::Tokenizer& tokenizer,
               int64_t seq_len, std::function<void(const std::string&)> report);
  const core::Tokenizer& tokenizer() const override { return tokenizer_; }
  int64_t seq_len() const override { return seq_len_; }
  std::vector<std::string> read_prompts(const std::string& path,
                                        int64_t max_prompts) const override;
  core::Example tokenize(const std::string& prompt, const std::string& response,
                         bool as_training_data) const override;
  std::vector<core::Example>& train() override { return sets_.train; }
  void report(const std::string& line) override { report_(line); }

 private:
  DataSets& sets_;
  const DataOptions& options_;
  const core::Tokenizer& tokenizer_;
  int64_t seq_len_;
  std::function<void(const std::string&)> report_;
};

}  // namespace shardtune::io
