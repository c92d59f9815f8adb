#include "launch/commands.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "core/generate.h"
#include "io/checkpoint.h"
#include "launch/bootstrap.h"
#include "launch/cmd_tokenize.h"
#include "launch/export.h"
#include "launch/signals.h"
#include "launch/trainer.h"
#include "parallel/communicator.h"
#include "parallel/errors.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

namespace {

constexpr const char* kUsage =
    "usage: shardtune <command> [--config FILE.ini] [--section.key=value ...]\n"
    "commands:\n"
    "  train     fine-tune or pretrain a model (see --help for every option)\n"
    "  eval      held-out loss and perplexity of a checkpoint ([checkpoint] init_from)\n"
    "  generate  sample text from a checkpoint ([generate] prompt=..., from_eval=N)\n"
    "  export    merge a run's strategy into the base weights and write the plain model to\n"
    "            <[train] out_dir>/export ([checkpoint] init_from=the run's checkpoint)\n"
    "  ckpt inspect FILE|DIR   show a checkpoint's step, layout, strategy and tensors\n"
    "  tokenize  --tokenizer PATH --text STRING | --decode \"ID ...\" | --info\n"
    "Launch with mpirun -np N (or srun) for several ranks.\n";

void init_logging(int rank) {
  auto logger = spdlog::stdout_color_mt("shardtune");
  logger->set_pattern("[%H:%M:%S] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(rank == 0 ? spdlog::level::info : spdlog::level::warn);
}

// Runs `body` on every rank; if it throws on any rank, the lowest failing rank prints its message
// and every rank returns the error's exit code. `body` must not run collectives that a failing
// rank would skip (setup phases: parsing, file reading, model building).
int agree(parallel::Communicator& world, const std::function<void()>& body) {
  std::string message;
  int code = 0;
  try {
    body();
  } catch (const UserError& e) {
    message = e.what();
    code = kUserErrorExitCode;
  } catch (const std::exception& e) {
    message = std::string("internal error: ") + e.what();
    code = 1;
  }
  auto first = torch::tensor({code ? world.rank() : world.size(), code}, torch::kInt);
  auto lowest = first.clone();
  world.all_reduce(lowest, parallel::ReduceOp::kMin);
  const int failing = lowest[0].item<int>();
  if (failing == world.size()) return 0;
  auto worst = first.narrow(0, 1, 1).clone();
  world.all_reduce(worst, parallel::ReduceOp::kMax);
  if (world.rank() == failing) {
    std::fprintf(stderr, "shardtune: error%s: %s\n",
                 world.size() > 1 ? (" on rank " + std::to_string(failing)).c_str() : "",
                 message.c_str());
  }
  return worst[0].item<int>();
}

int cmd_ckpt(const std::vector<std::string>& args) {
  if (args.size() != 2 || args[0] != "inspect") {
    std::fprintf(stderr, "usage: shardtune ckpt inspect FILE|DIR\n");
    return kUserErrorExitCode;
  }
  const std::string file = io::resolve_checkpoint(args[1]);
  const auto info = io::read_checkpoint_info(file);
  std::printf("file: %s\nformat: %d (shardtune %s)\nstep: %lld\nconsumed_samples: %lld\n"
              "layout: %s\nstrategy: %s\ntokenizer: %s\nmodel: %s\n",
              file.c_str(), info.format_version, info.shardtune_version.c_str(),
              static_cast<long long>(info.step), static_cast<long long>(info.consumed_samples),
              info.layout.c_str(), info.strategy.c_str(), info.tokenizer.c_str(),
              info.model_config.c_str());
  if (info.format_version >= 2) {
    std::printf("strategy_options: %s\nworld: %lld\noptimizer_step: %lld\nbase_model: %s\n",
                info.strategy_options.c_str(), static_cast<long long>(info.world),
                static_cast<long long>(info.optimizer_step),
                info.base_model.empty() ? "(self-contained)" : info.base_model.c_str());
  }
  std::printf("tensors:\n");
  for (const auto& t : io::list_checkpoint_tensors(file)) {
    std::printf("  %-64s %-8s %-16s %s\n", t.path.c_str(), t.dtype.c_str(),
                c10::str(c10::IntArrayRef(t.shape)).c_str(), t.sharding.c_str());
  }
  return 0;
}

void print_generations(Trainer& trainer, bool print) {
  const auto& g = trainer.config().generate;
  const auto& tok = trainer.tokenizer();
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::string> texts, references;
  for (const auto& p : g.prompts) {
    texts.push_back(p);
    references.push_back("");
  }
  const auto& records = trainer.data().eval_records;
  for (int64_t i = 0; i < g.from_eval && i < static_cast<int64_t>(records.size()); ++i) {
    texts.push_back(records[static_cast<size_t>(i)].prompt);
    references.push_back(records[static_cast<size_t>(i)].response);
  }
  for (const auto& t : texts) {
    auto ids = tok.encode(t);
    ids.insert(ids.begin(), tok.bos_id());
    prompts.push_back(ids);
  }
  core::GenerateOptions opt;
  opt.max_new_tokens = g.max_new_tokens;
  opt.temperature = g.temperature;
  opt.top_k = g.top_k;
  opt.eos_id = tok.eos_id();
  opt.vocab_limit = tok.vocab_size();
  opt.seed = trainer.config().train.seed;
  const auto outputs = core::generate(trainer.model(), prompts, tok.pad_id(), opt);
  if (!print) return;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string prompt = texts[i];
    while (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();
    std::printf("prompt:    %s\ngenerated: %s\n", prompt.c_str(), tok.decode(outputs[i]).c_str());
    if (!references[i].empty()) std::printf("reference: %s\n", references[i].c_str());
    std::printf("\n");
  }
}

}  // namespace

int run_cli(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? kUserErrorExitCode : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "tokenize") return run_tokenize(args);
  if (command == "ckpt") {
    try {
      return cmd_ckpt(args);
    } catch (const UserError& e) {
      std::fprintf(stderr, "shardtune: error: %s\n", e.what());
      return kUserErrorExitCode;
    }
  }
  if (command != "train" && command != "eval" && command != "generate" && command != "export") {
    std::fprintf(stderr, "shardtune: error: unknown command '%s'\n%s", command.c_str(), kUsage);
    return kUserErrorExitCode;
  }

  std::optional<MpiRuntime> mpi;
  try {
    mpi.emplace(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardtune: error: %s\n", e.what());
    return kUserErrorExitCode;
  }
  init_logging(mpi->rank());
  parallel::Communicator& world = *mpi->world();

  // Setup: every failure here is agreed on, printed once, and ends all ranks with its code.
  Config config;
  std::string help;
  bool wants_help = false;
  std::optional<parallel::RankGrid> grid;
  std::unique_ptr<Trainer> trainer;
  int rc = agree(world, [&] {
    wants_help = !parse_config(args, config, help);
    if (wants_help) return;
    require(!config.config_file.empty() || command != "train" || !config.data.train_file.empty() ||
                config.data.source != "jsonl",
            "no --config FILE given (and no [data] train_file); see shardtune train --help");
    config.validate(mpi->world_size());
  });
  if (rc != 0) return rc;
  if (wants_help) {
    if (mpi->rank() == 0) std::cout << kUsage << "\n" << help;
    return 0;
  }
  // Every rank must run the same configuration: compare a hash of the resolved config with
  // rank 0's.
  const std::string resolved = config.to_ini();
  auto hash = torch::tensor({static_cast<int64_t>(std::hash<std::string>{}(resolved))}, torch::kLong);
  auto root_hash = hash.clone();
  world.broadcast(root_hash, 0);
  rc = agree(world, [&] {
    require(hash.item<int64_t>() == root_hash.item<int64_t>(),
            "configuration differs from rank 0's (same config file and command-line options "
            "are required on every rank)");
  });
  if (rc != 0) return rc;
  // Grid creation is collective (communicator splits), so it gets its own agreement round.
  rc = agree(world, [&] {
    grid.emplace(parallel::RankGrid::create(mpi->world(), config.parallel.tp));
  });
  if (rc != 0) return rc;
  if (mpi->rank() == 0) {
    spdlog::info("shardtune {} | {} | {}", SHARDTUNE_VERSION, mpi->describe(), grid->describe());
    const auto warning = parallel::tp_span_warning(grid->dims(), mpi->node_of_rank());
    if (!warning.empty()) spdlog::warn("{}", warning);
    std::cout << "# resolved configuration\n" << resolved << std::flush;
  }
  if (command != "train" && config.checkpoint.init_from.empty()) {
    if (mpi->rank() == 0) {
      std::fprintf(stderr, "shardtune: error: %s needs [checkpoint] init_from=FILE|DIR\n",
                   command.c_str());
    }
    return kUserErrorExitCode;
  }
  rc = agree(world, [&] { trainer = std::make_unique<Trainer>(config, *grid); });
  if (rc != 0) return rc;

  // Past setup, ranks are inside collectives: an error on one rank must end all of them.
  // SIGTERM / SIGUSR1 from here on: finish the step, checkpoint, exit 0 (launch/signals.h).
  if (command == "train") install_stop_signals();
  try {
    if (command == "train") {
      trainer->train();
    } else if (command == "eval") {
      const auto r = trainer->evaluate();
      if (mpi->rank() == 0) {
        std::printf("eval_loss %.6f\neval_ppl %.4f\neval_tokens %lld\n", r.loss, r.perplexity,
                    static_cast<long long>(r.tokens));
      }
    } else if (command == "export") {
      export_merged(*trainer, *grid);
    } else {
      // Every rank generates (under TP each forward is collective); rank 0 prints.
      print_generations(*trainer, mpi->rank() == 0);
    }
  } catch (const std::exception& e) {
    const bool user = dynamic_cast<const UserError*>(&e) != nullptr;
    std::fprintf(stderr, "shardtune: error on rank %d: %s\n", mpi->rank(), e.what());
    std::fflush(stderr);
    if (mpi->world_size() > 1) abort_all(user ? kUserErrorExitCode : 1);
    return user ? kUserErrorExitCode : 1;
  }
  trainer.reset();
  grid.reset();
  return 0;
}

}  // namespace shardtune::launch
