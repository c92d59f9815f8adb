#include "io/data.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <utility>

#include "base/checks.h"
#include "base/errors.h"
#include "base/strings.h"
#include "io/augment.h"
#include "io/packing.h"
#include "io/chat_template.h"
#include "io/jsonl.h"
#include "io/token_dataset.h"

namespace shardtune::io {

namespace {

// [data] wordnet_task's names: one table for the option's check and for the mapping.
constexpr std::pair<const char*, WordNetTask> kWordNetTasks[] = {
    {"glosses", WordNetTask::kGlosses},
    {"define", WordNetTask::kDefine},
    {"lexname", WordNetTask::kLexname},
    {"pos", WordNetTask::kPos}};

std::optional<WordNetTask> wordnet_task_named(const std::string& name) {
  for (const auto& [known, task] : kWordNetTasks) {
    if (name == known) return task;
  }
  return std::nullopt;
}

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
void check_token_ids(const Record& r, int64_t model_vocab, bool augmenting) {
  if (r.input_ids.empty()) return;
  require(!augmenting, r.where + ": [data] augment rewrites text; pre-tokenized records have none");
  for (size_t i = 0; i < r.input_ids.size(); ++i) {
    require(r.input_ids[i] < model_vocab,
            r.where + ": input_ids[" + std::to_string(i) + "] = " +
                std::to_string(r.input_ids[i]) + " is not below the model's vocabulary size " +
                std::to_string(model_vocab));
  }
}

// The chat template [data] chat_template names; null for none.
std::shared_ptr<const ChatTemplate> chat_template_of(const DataOptions& d,
                                                     const core::Tokenizer& tokenizer) {
  const auto kind = parse_chat_template(d.chat_template, "[data] chat_template");
  if (kind == ChatTemplateKind::kNone) return nullptr;
  return std::make_shared<const ChatTemplate>(kind, tokenizer);
}

// A token dataset made as this run would tokenize: the same tokenizer, chat template and
// train_on_prompt, every id inside the model's vocabulary. Documents are cut to seq_len, as JSONL
// examples are.
std::vector<core::Example> read_tokenized(const std::string& path, const DataOptions& d,
                                          const core::Tokenizer& tokenizer, int64_t seq_len,
                                          int64_t model_vocab) {
  TokenDataset ds = read_token_dataset(path, seq_len);
  const TokenDatasetInfo& info = ds.info;
  const std::string again = " (run shardtune preprocess again with this configuration)";
  require(info.tokenizer == tokenizer.identity(),
          path + ": tokenized by '" + base::printable(info.tokenizer) +
              "', but [data] tokenizer is '" + tokenizer.identity() + "'" + again);
  require(info.chat_template == d.chat_template,
          path + ": made with chat_template=" + base::printable(info.chat_template) +
              ", but [data] chat_template=" + d.chat_template + again);
  require(info.train_on_prompt == d.train_on_prompt,
          path + ": made with train_on_prompt=" + (info.train_on_prompt ? "true" : "false") +
              ", but [data] train_on_prompt=" + (d.train_on_prompt ? "true" : "false") + again);
  // The reader proved every id below info.vocab_size; only a larger one needs the scan.
  for (size_t doc = 0; info.vocab_size > model_vocab && doc < ds.documents.size(); ++doc) {
    for (const int64_t id : ds.documents[doc].tokens) {
      require(id < model_vocab, path + ": document " + std::to_string(doc) + " holds id " +
                                    std::to_string(id) +
                                    ", not below the model's vocabulary size " +
                                    std::to_string(model_vocab));
    }
  }
  return std::move(ds.documents);
}

}  // namespace

void DataOptions::validate() const {
  require(source == "jsonl" || source == "wordnet" || source == "synthetic" ||
              source == "tokenized",
          "[data] source='" + source + "' is unknown (known: jsonl, wordnet, synthetic, tokenized)");
  require(source != "jsonl" || !train_file.empty(),
          "[data] train_file is required when source=jsonl");
  require(source != "tokenized" || !tokenized_dir.empty(),
          "[data] tokenized_dir is required when source=tokenized");
  require(source != "tokenized" || augment.empty(),
          "[data] augment rewrites text; source=tokenized holds token ids only");
  if (!wordnet_task_named(wordnet_task)) {
    std::string known;
    for (const auto& entry : kWordNetTasks) {
      known += (known.empty() ? "" : ", ") + std::string(entry.first);
    }
    throw UserError("[data] wordnet_task='" + wordnet_task + "' is unknown (known: " + known + ")");
  }
  require(wordnet_eval_percent >= 0 && wordnet_eval_percent < 100,
          "[data] wordnet_eval_percent must be in [0, 100)");
  parse_chat_template(chat_template, "[data] chat_template");
  base::require_count("[data] max_eval_samples", max_eval_samples, 0);
  base::require_count("[data] synthetic_samples", synthetic_samples, 1);
  base::require_in_range("[data] augment_rate", augment_rate, 0.0, 1.0);
  base::require_count("[data] augment_copies", augment_copies, 1);
}

namespace {

DataSets load_unpacked(const DataOptions& d, int64_t seq_len, const core::Tokenizer& tokenizer,
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
  if (d.source == "tokenized") {
    sets.train = read_tokenized(tokenized_train_path(d), d, tokenizer, seq_len, model_vocab);
    if (std::filesystem::exists(tokenized_eval_path(d))) {
      sets.eval = read_tokenized(tokenized_eval_path(d), d, tokenizer, seq_len, model_vocab);
      if (static_cast<int64_t>(sets.eval.size()) > d.max_eval_samples) {
        sets.eval.resize(static_cast<size_t>(d.max_eval_samples));
      }
    }
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
    const WordNetTask task = wordnet_task_named(d.wordnet_task).value();  // validate() checked
    train_records = wordnet_records(synsets, task, Split::kTrain, d.wordnet_eval_percent);
    sets.eval_records = wordnet_records(synsets, task, Split::kEval, d.wordnet_eval_percent);
  }
  for (const auto& r : train_records) check_token_ids(r, model_vocab, !d.augment.empty());
  for (const auto& r : sets.eval_records) check_token_ids(r, model_vocab, false);
  if (static_cast<int64_t>(sets.eval_records.size()) > d.max_eval_samples) {
    sets.eval_records.resize(static_cast<size_t>(d.max_eval_samples));
  }
  if (!d.augment.empty()) {
    // Training records only: held-out data stays as written.
    const Augmenter augmenter(
        synsets, parse_augment(d.augment, d.augment_rate, d.augment_seed, d.augment_copies));
    train_records = augmenter.expand(train_records);
  }
  const auto chat = chat_template_of(d, tokenizer);
  sets.train = tokenize_all(train_records, tokenizer, seq_len, d.train_on_prompt, chat.get());
  sets.eval = tokenize_all(sets.eval_records, tokenizer, seq_len, d.train_on_prompt, chat.get());
  return sets;
}

}  // namespace

DataSets load_datasets(const DataOptions& d, int64_t seq_len, const core::Tokenizer& tokenizer,
                       int64_t model_vocab, uint64_t seed) {
  DataSets sets = load_unpacked(d, seq_len, tokenizer, model_vocab, seed);
  // Held-out examples stay one per row: evaluation and label accuracy count examples.
  if (d.packing) sets.train = pack_examples(std::move(sets.train), seq_len);
  return sets;
}

std::string tokenized_train_path(const DataOptions& options) {
  return (std::filesystem::path(options.tokenized_dir) / "train.h5").string();
}

std::string tokenized_eval_path(const DataOptions& options) {
  return (std::filesystem::path(options.tokenized_dir) / "eval.h5").string();
}

DocumentEncoder jsonl_encoder(const DataOptions& options, const core::Tokenizer& tokenizer,
                              int64_t model_vocab) {
  require(options.augment.empty(),
          "[data] augment: shardtune preprocess writes the records as they are (augmentation "
          "draws over the whole record set when training from the JSONL)");
  const auto chat = chat_template_of(options, tokenizer);
  const bool train_on_prompt = options.train_on_prompt;
  return [chat, &tokenizer, model_vocab, train_on_prompt](const JsonlRecord& line,
                                                          const std::string& where) {
    Record record = to_record(JsonlRecord(line), where);
    record.where = where;
    check_token_ids(record, model_vocab, false);
    return tokenize(record, tokenizer, std::numeric_limits<int64_t>::max(), train_on_prompt,
                    chat.get());
  };
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
