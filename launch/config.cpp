#include "launch/config.h"

#include <boost/program_options.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "parallel/errors.h"

namespace po = boost::program_options;

namespace shardtune::launch {

namespace {

// Every option once: name, target, description. to_ini() prints from the parsed variables map,
// so the table is the single source of truth.
po::options_description describe(Config& c) {
  po::options_description model("[model] architecture");
  model.add_options()
      ("model.family", po::value(&c.model.family)->default_value(c.model.family), "llama | gpt2")
      ("model.vocab_size", po::value(&c.model.vocab_size)->default_value(c.model.vocab_size), "embedding rows (>= tokenizer vocabulary)")
      ("model.hidden_size", po::value(&c.model.hidden_size)->default_value(c.model.hidden_size), "model width")
      ("model.num_layers", po::value(&c.model.num_layers)->default_value(c.model.num_layers), "transformer blocks")
      ("model.num_heads", po::value(&c.model.num_heads)->default_value(c.model.num_heads), "attention heads")
      ("model.num_kv_heads", po::value(&c.model.num_kv_heads)->default_value(c.model.num_kv_heads), "key/value heads for grouped-query attention (0 = num_heads)")
      ("model.intermediate_size", po::value(&c.model.intermediate_size)->default_value(c.model.intermediate_size), "MLP width")
      ("model.max_position_embeddings", po::value(&c.model.max_position_embeddings)->default_value(c.model.max_position_embeddings), "longest sequence (gpt2 learned positions)")
      ("model.rope_theta", po::value(&c.model.rope_theta)->default_value(c.model.rope_theta), "rotary base (llama)")
      ("model.norm_eps", po::value(&c.model.norm_eps)->default_value(c.model.norm_eps), "RMSNorm/LayerNorm epsilon")
      ("model.tie_word_embeddings", po::value(&c.model.tie_word_embeddings)->default_value(c.model.tie_word_embeddings), "share embedding and LM head (llama; gpt2 always ties)")
      ("model.attention_bias", po::value(&c.model.attention_bias)->default_value(c.model.attention_bias), "q/k/v biases (Qwen2-style, llama)")
      ("model.dropout", po::value(&c.model.dropout)->default_value(c.model.dropout), "hidden and attention dropout")
      ("model.init_std", po::value(&c.model.init_std)->default_value(c.model.init_std), "std of the normal weight init");
  po::options_description train("[train] optimisation");
  train.add_options()
      ("train.steps", po::value(&c.train.steps)->default_value(c.train.steps), "optimizer steps")
      ("train.global_batch", po::value(&c.train.global_batch)->default_value(c.train.global_batch), "samples per step over all data-parallel ranks")
      ("train.micro_batch", po::value(&c.train.micro_batch)->default_value(c.train.micro_batch), "samples per forward/backward per rank (gradient accumulation fills the rest)")
      ("train.seq_len", po::value(&c.train.seq_len)->default_value(c.train.seq_len), "tokens per sample (longer examples are truncated)")
      ("train.lr", po::value(&c.train.lr)->default_value(c.train.lr), "peak learning rate")
      ("train.min_lr", po::value(&c.train.min_lr)->default_value(c.train.min_lr), "learning rate at the end of the cosine decay")
      ("train.warmup_steps", po::value(&c.train.warmup_steps)->default_value(c.train.warmup_steps), "linear warm-up steps")
      ("train.weight_decay", po::value(&c.train.weight_decay)->default_value(c.train.weight_decay), "AdamW decoupled weight decay (matrices only)")
      ("train.beta1", po::value(&c.train.beta1)->default_value(c.train.beta1), "AdamW beta1")
      ("train.beta2", po::value(&c.train.beta2)->default_value(c.train.beta2), "AdamW beta2")
      ("train.eps", po::value(&c.train.eps)->default_value(c.train.eps), "AdamW epsilon")
      ("train.grad_clip", po::value(&c.train.grad_clip)->default_value(c.train.grad_clip), "clip the global gradient norm to this (0 = off)")
      ("train.seed", po::value(&c.train.seed)->default_value(c.train.seed), "seed for init, data order and dropout")
      ("train.log_every", po::value(&c.train.log_every)->default_value(c.train.log_every), "steps between progress lines / metrics records")
      ("train.eval_every", po::value(&c.train.eval_every)->default_value(c.train.eval_every), "steps between evaluations (0 = before and after training only)")
      ("train.out_dir", po::value(&c.train.out_dir)->default_value(c.train.out_dir), "run directory (metrics.jsonl, default checkpoint dir)");
  po::options_description data("[data] input");
  data.add_options()
      ("data.source", po::value(&c.data.source)->default_value(c.data.source), "jsonl | wordnet | synthetic")
      ("data.train_file", po::value(&c.data.train_file)->default_value(c.data.train_file), "JSONL training file ({text} | {prompt,response} | {instruction,input,output})")
      ("data.eval_file", po::value(&c.data.eval_file)->default_value(c.data.eval_file), "JSONL held-out file (optional)")
      ("data.tokenizer", po::value(&c.data.tokenizer)->default_value(c.data.tokenizer), "tokenizer: byte")
      ("data.train_on_prompt", po::value(&c.data.train_on_prompt)->default_value(c.data.train_on_prompt), "also put loss on prompt tokens")
      ("data.max_eval_samples", po::value(&c.data.max_eval_samples)->default_value(c.data.max_eval_samples), "evaluate on at most this many held-out samples")
      ("data.wordnet_dir", po::value(&c.data.wordnet_dir)->default_value(c.data.wordnet_dir), "WordNet database directory (Debian wordnet-base)")
      ("data.wordnet_task", po::value(&c.data.wordnet_task)->default_value(c.data.wordnet_task), "glosses (language modelling) | define (\"define: WORD\" -> gloss)")
      ("data.wordnet_eval_percent", po::value(&c.data.wordnet_eval_percent)->default_value(c.data.wordnet_eval_percent), "percent of synsets held out for evaluation")
      ("data.synthetic_samples", po::value(&c.data.synthetic_samples)->default_value(c.data.synthetic_samples), "number of random-token samples for source=synthetic")
      ("data.augment", po::value(&c.data.augment)->default_value(c.data.augment), "training-data augmentation: synonym (WordNet), reorder (sentences), or both comma-separated")
      ("data.augment_rate", po::value(&c.data.augment_rate)->default_value(c.data.augment_rate), "synonym: probability per word; reorder: probability per text")
      ("data.augment_seed", po::value(&c.data.augment_seed)->default_value(c.data.augment_seed), "seed of the augmentation (same seed, same augmented data)")
      ("data.augment_copies", po::value(&c.data.augment_copies)->default_value(c.data.augment_copies), "augmented copies added per training record (originals kept)");
  po::options_description strategy("[strategy] fine-tuning policy");
  strategy.add_options()
      ("strategy.name", po::value(&c.strategy)->default_value(c.strategy), "sft | lora | ptuning-v2 | freeze (options in [strategy.<name>], docs/strategies.md)");
  po::options_description ckpt("[checkpoint] saving and loading");
  ckpt.add_options()
      ("checkpoint.dir", po::value(&c.checkpoint.dir)->default_value(c.checkpoint.dir), "checkpoint directory (default <out_dir>/checkpoints)")
      ("checkpoint.init_from", po::value(&c.checkpoint.init_from)->default_value(c.checkpoint.init_from), "load model weights from this checkpoint file or directory")
      ("checkpoint.every", po::value(&c.checkpoint.every)->default_value(c.checkpoint.every), "save every N steps (0 = at the end only)")
      ("checkpoint.save_final", po::value(&c.checkpoint.save_final)->default_value(c.checkpoint.save_final), "save when training ends")
      ("checkpoint.keep_last", po::value(&c.checkpoint.keep_last)->default_value(c.checkpoint.keep_last), "keep only the newest K checkpoints (0 = all)")
      ("checkpoint.resume", po::value(&c.checkpoint.resume)->default_value(c.checkpoint.resume), "resume training from a checkpoint: auto (<dir>/latest when it exists) or FILE|DIR; also --resume");
  po::options_description parallel("[parallel] layout");
  parallel.add_options()
      ("parallel.tp", po::value(&c.parallel.tp)->default_value(c.parallel.tp), "tensor-parallel size (dp = world / tp)")
      ("parallel.zero", po::value(&c.parallel.zero)->default_value(c.parallel.zero), "ZeRO stage (0 or 1)")
      ("parallel.bucket_mb", po::value(&c.parallel.bucket_mb)->default_value(c.parallel.bucket_mb), "gradient all-reduce bucket size in MiB");
  po::options_description gen("[generate] sampling (shardtune generate)");
  gen.add_options()
      ("generate.prompt", po::value(&c.generate.prompts)->composing(), "prompt text (repeatable)")
      ("generate.from_eval", po::value(&c.generate.from_eval)->default_value(c.generate.from_eval), "also sample for the first N held-out prompts and show references")
      ("generate.max_new_tokens", po::value(&c.generate.max_new_tokens)->default_value(c.generate.max_new_tokens), "tokens to generate")
      ("generate.temperature", po::value(&c.generate.temperature)->default_value(c.generate.temperature), "0 = greedy")
      ("generate.top_k", po::value(&c.generate.top_k)->default_value(c.generate.top_k), "sample among the k most likely tokens (0 = all)");
  po::options_description all;
  all.add(model).add(train).add(data).add(strategy).add(ckpt).add(parallel).add(gen);
  return all;
}

// Options of [strategy.<name>] are owned by the strategy; everything else must be known.
bool is_strategy_option(const std::string& key) {
  return key.rfind("strategy.", 0) == 0 && key.find('.', 9) != std::string::npos;
}

void collect_unregistered(const std::vector<po::option>& options, const std::string& where,
                          Config& config) {
  for (const auto& o : options) {
    if (!o.unregistered) continue;
    if (is_strategy_option(o.string_key)) {
      const std::string rest = o.string_key.substr(9);  // "<name>.<key>"
      const auto dot = rest.find('.');
      if (rest.substr(0, dot) == config.strategy || config.strategy.empty()) {
        config.strategy_options[rest.substr(dot + 1)] = o.value.empty() ? "" : o.value.front();
      }
      continue;
    }
    throw UserError(where + ": unknown option '" + o.string_key + "'");
  }
}

}  // namespace

std::string Config::checkpoint_dir() const {
  return checkpoint.dir.empty() ? (std::filesystem::path(train.out_dir) / "checkpoints").string()
                                : checkpoint.dir;
}

void Config::validate(int world) const {
  model.validate();
  const auto positive = [](const char* name, int64_t v) {
    require(v > 0, std::string(name) + "=" + std::to_string(v) + " must be positive");
  };
  positive("[train] steps", train.steps);
  positive("[train] global_batch", train.global_batch);
  positive("[train] micro_batch", train.micro_batch);
  positive("[train] log_every", train.log_every);
  require(train.seq_len >= 2, "[train] seq_len must be at least 2");
  require(train.seq_len <= model.max_position_embeddings,
          "[train] seq_len=" + std::to_string(train.seq_len) +
              " exceeds [model] max_position_embeddings=" +
              std::to_string(model.max_position_embeddings));
  require(train.lr > 0, "[train] lr must be positive");
  require(train.warmup_steps >= 0 && train.warmup_steps <= train.steps,
          "[train] warmup_steps must be in [0, steps]");
  require(parallel.tp >= 1, "[parallel] tp must be >= 1");
  require(world % parallel.tp == 0,
          "[parallel] tp=" + std::to_string(parallel.tp) + " does not divide the world size " +
              std::to_string(world));
  const int64_t dp = world / parallel.tp;
  require(train.global_batch % dp == 0,
          "[train] global_batch=" + std::to_string(train.global_batch) +
              " is not divisible by the data-parallel size " + std::to_string(dp));
  const int64_t per_rank = train.global_batch / dp;
  require(per_rank % train.micro_batch == 0,
          "[train] micro_batch=" + std::to_string(train.micro_batch) +
              " does not divide the per-rank batch " + std::to_string(per_rank) +
              " (global_batch / data-parallel size)");
  require(parallel.zero == 0 || parallel.zero == 1, "[parallel] zero must be 0 or 1");
  require(data.source == "jsonl" || data.source == "wordnet" || data.source == "synthetic",
          "[data] source='" + data.source + "' is unknown (known: jsonl, wordnet, synthetic)");
  require(data.source != "jsonl" || !data.train_file.empty(),
          "[data] train_file is required when source=jsonl");
  require(data.wordnet_task == "glosses" || data.wordnet_task == "define",
          "[data] wordnet_task='" + data.wordnet_task + "' is unknown (known: glosses, define)");
  require(data.wordnet_eval_percent >= 0 && data.wordnet_eval_percent < 100,
          "[data] wordnet_eval_percent must be in [0, 100)");
}

std::string Config::to_ini() const {
  std::ostringstream out;
  std::string current;
  auto line = [&](const std::string& section, const std::string& key, const auto& value) {
    if (current != section) {
      out << (current.empty() ? "" : "\n") << "[" << section << "]\n";
      current = section;
    }
    out << key << " = " << value << "\n";
  };
  const auto b = [](bool v) { return v ? "true" : "false"; };
  line("model", "family", model.family);
  line("model", "vocab_size", model.vocab_size);
  line("model", "hidden_size", model.hidden_size);
  line("model", "num_layers", model.num_layers);
  line("model", "num_heads", model.num_heads);
  line("model", "num_kv_heads", model.num_kv_heads);
  line("model", "intermediate_size", model.intermediate_size);
  line("model", "max_position_embeddings", model.max_position_embeddings);
  line("model", "rope_theta", model.rope_theta);
  line("model", "norm_eps", model.norm_eps);
  line("model", "tie_word_embeddings", b(model.tie_word_embeddings));
  line("model", "attention_bias", b(model.attention_bias));
  line("model", "dropout", model.dropout);
  line("model", "init_std", model.init_std);
  line("train", "steps", train.steps);
  line("train", "global_batch", train.global_batch);
  line("train", "micro_batch", train.micro_batch);
  line("train", "seq_len", train.seq_len);
  line("train", "lr", train.lr);
  line("train", "min_lr", train.min_lr);
  line("train", "warmup_steps", train.warmup_steps);
  line("train", "weight_decay", train.weight_decay);
  line("train", "beta1", train.beta1);
  line("train", "beta2", train.beta2);
  line("train", "eps", train.eps);
  line("train", "grad_clip", train.grad_clip);
  line("train", "seed", train.seed);
  line("train", "log_every", train.log_every);
  line("train", "eval_every", train.eval_every);
  line("train", "out_dir", train.out_dir);
  line("data", "source", data.source);
  line("data", "train_file", data.train_file);
  line("data", "eval_file", data.eval_file);
  line("data", "tokenizer", data.tokenizer);
  line("data", "train_on_prompt", b(data.train_on_prompt));
  line("data", "max_eval_samples", data.max_eval_samples);
  line("data", "wordnet_dir", data.wordnet_dir);
  line("data", "wordnet_task", data.wordnet_task);
  line("data", "wordnet_eval_percent", data.wordnet_eval_percent);
  line("data", "synthetic_samples", data.synthetic_samples);
  line("data", "augment", data.augment);
  line("data", "augment_rate", data.augment_rate);
  line("data", "augment_seed", data.augment_seed);
  line("data", "augment_copies", data.augment_copies);
  line("strategy", "name", strategy);
  for (const auto& [k, v] : strategy_options) line("strategy." + strategy, k, v);
  line("checkpoint", "dir", checkpoint_dir());
  line("checkpoint", "init_from", checkpoint.init_from);
  line("checkpoint", "every", checkpoint.every);
  line("checkpoint", "save_final", b(checkpoint.save_final));
  line("checkpoint", "keep_last", checkpoint.keep_last);
  line("checkpoint", "resume", checkpoint.resume);
  line("parallel", "tp", parallel.tp);
  line("parallel", "zero", parallel.zero);
  line("parallel", "bucket_mb", parallel.bucket_mb);
  return out.str();
}

bool parse_config(const std::vector<std::string>& raw_args, Config& config, std::string& help) {
  // --resume X / --resume=X is --checkpoint.resume=X.
  std::vector<std::string> args;
  for (size_t i = 0; i < raw_args.size(); ++i) {
    if (raw_args[i] == "--resume") {
      require(i + 1 < raw_args.size(), "command line: --resume needs auto or a checkpoint path");
      args.push_back("--checkpoint.resume=" + raw_args[++i]);
    } else if (raw_args[i].rfind("--resume=", 0) == 0) {
      args.push_back("--checkpoint.resume=" + raw_args[i].substr(9));
    } else {
      args.push_back(raw_args[i]);
    }
  }
  auto desc = describe(config);
  po::options_description cli("Command line");
  std::string config_file;
  cli.add_options()("help,h", "show the options")(
      "config,c", po::value(&config_file), "INI config file (sections as below)");
  po::options_description everything;
  everything.add(cli).add(desc);

  po::variables_map vm;
  try {
    auto parsed = po::command_line_parser(args).options(everything).allow_unregistered().run();
    // Strategy name may come from the command line; read it before routing strategy options.
    po::store(parsed, vm);
    if (vm.count("help")) {
      std::ostringstream s;
      s << everything;
      help = s.str();
      return false;
    }
    if (vm.count("config")) {
      config_file = vm["config"].as<std::string>();
      std::ifstream in(config_file);
      require(static_cast<bool>(in), config_file + ": cannot open config file");
      auto from_file = po::parse_config_file(in, desc, /*allow_unregistered=*/true);
      po::store(from_file, vm);
      po::notify(vm);
      config.config_file = config_file;
      collect_unregistered(from_file.options, config_file, config);
    } else {
      po::notify(vm);
    }
    // Command-line strategy options override the file's.
    collect_unregistered(parsed.options, "command line", config);
  } catch (const po::error& e) {
    const std::string where = config_file.empty() ? "command line" : config_file;
    throw UserError(where + ": " + e.what());
  }
  return true;
}

}  // namespace shardtune::launch
