#include "launch/cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/errors.h"
#include "io/checkpoint.h"
#include "launch/agree.h"
#include "launch/bootstrap.h"
#include "launch/cli_reference.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/progress.h"
#include "launch/resume.h"
#include "launch/signals.h"
#include "launch/trainer.h"
#include "parallel/mpi_communicator.h"
#include "parallel/rank_grid.h"

namespace shardtune::launch {

namespace {

void init_logging(int rank) {
  progress::enable(rank == 0);
  auto logger = std::make_shared<spdlog::logger>(
      "shardtune", progress::progress_sink(std::make_shared<spdlog::sinks::stdout_color_sink_mt>()));
  spdlog::register_logger(logger);
  logger->set_pattern("[%H:%M:%S] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(rank == 0 ? spdlog::level::info : spdlog::level::warn);
}

// A standalone command reads files a user names (a checkpoint, a tokenizer): whatever escapes it
// is one line, never a crash report.
int run_standalone(const Command& command, const std::vector<std::string>& args) {
  install_fault_report();
  try {
    return command.standalone(args);
  } catch (const std::exception& e) {
    print_error(message_of(e));
    return exit_code_of(e);
  } catch (...) {
    print_error("internal error: an exception of unknown type");
    return 1;
  }
}

// A run with its set-up, once per process. Every set-up phase is agreed on: a failure anywhere
// is printed once and ends all ranks with its code.
class Run {
 public:
  Run(const Command& command, std::vector<std::string> args, const TestHooks& hooks)
      : command_(command), args_(std::move(args)), hooks_(hooks) {}

  int execute(int* argc, char*** argv) {
    // Handled from the very start: a stop signal during MPI start-up or set-up abandons set-up
    // at its next phase boundary instead of killing the rank (launch/signals.h).
    install_stop_signals();
    install_fault_report();
    try {
      mpi_.emplace(argc, argv);
    } catch (const std::exception& e) {
      print_error(message_of(e));
      return kUserErrorExitCode;
    }
    install_stop_signals();  // MPI_Init must not have replaced them
    install_fault_report();
    set_signal_rank(mpi_->rank());
    init_logging(mpi_->rank());
    auto& world = *mpi_->world();
    bool wants_help = false;
    if (int rc = agree(world, [&] { wants_help = !configure(); }); rc != 0) return rc;
    if (wants_help) {
      if (mpi_->rank() == 0) std::cout << usage() << "\n" << help_;
      return 0;
    }
    if (int rc = check_same_config(world); rc != 0) return rc;
    // Grid creation is collective (communicator splits), so it gets its own agreement round.
    if (int rc = agree(world, [&] {
          grid_.emplace(parallel::RankGrid::create(mpi_->world(), config_.parallel.tp));
        });
        rc != 0) {
      return rc;
    }
    announce();
    if (command_.world_run) {
      exit_on_first_signal();  // nothing to save: a signal ends it at once
      WorldContext context{config_, world, mpi_->rank() == 0};
      const int rc = command_.world_run(context);
      grid_.reset();
      spdlog::default_logger()->flush();
      std::fflush(stdout);
      return rc;
    }
    // A Hugging Face folder is a trained model too: it serves when no checkpoint is named.
    if (command_.needs_checkpoint && config_.checkpoint.init_from.empty() &&
        config_.model_source.from_hf.empty()) {
      if (mpi_->rank() == 0) {
        print_error(std::string(command_.name) +
                    " needs [checkpoint] init_from=FILE|DIR (or [model] from_hf=DIR)");
      }
      return kUserErrorExitCode;
    }
    // Rank 0 resolves resume/init_from for every rank; the checkpoint directory is claimed and
    // probed (launch/resume.h).
    if (int rc = prepare_checkpoints(world, config_, command_.saves_checkpoints); rc != 0) {
      return rc;
    }
    if (int rc = agree(world, [&] {
          if (hooks_.during_setup) hooks_.during_setup(mpi_->rank());
          trainer_ = std::make_unique<Trainer>(config_, *grid_, hooks_);
        });
        rc != 0) {
      return rc;
    }
    // Past set-up, ranks are inside collectives: an error that the ranks cannot agree on must
    // end all of them (run_or_abort). Commands without stop_signals have nothing to save: a
    // signal ends them at once.
    if (!command_.stop_signals) exit_on_first_signal();
    RunContext context{*trainer_, *grid_, mpi_->rank() == 0};
    int rc = run_or_abort(world, [&] { command_.run(context); });
    if (rc == 0 && trainer_->stopped_by_signal() != 0) rc = kStoppedExitCode;
    trainer_.reset();
    grid_.reset();
    spdlog::default_logger()->flush();
    std::fflush(stdout);
    return rc;
  }

 private:
  // Parses and validates the configuration; false when --help was asked for.
  bool configure() {
    if (!parse_config(args_, config_, help_)) return false;
    require(!config_.config_file.empty() || std::string(command_.name) != "train" ||
                !config_.data.train_file.empty() || config_.data.source != "jsonl",
            "no --config FILE given (and no [data] train_file); see shardtune train --help");
    config_.validate(mpi_->world_size());
    return true;
  }

  // Every rank must run the same configuration: its hash against rank 0's.
  int check_same_config(parallel::Communicator& world) {
    const uint64_t mine = config_.hash();
    int64_t as_signed;
    std::memcpy(&as_signed, &mine, sizeof mine);
    auto hash = torch::tensor({as_signed}, torch::kLong);
    auto root_hash = hash.clone();
    world.broadcast(root_hash, 0);
    return agree(world, [&] {
      require(hash.item<int64_t>() == root_hash.item<int64_t>(),
              "configuration differs from rank 0's (same config file and command-line options "
              "are required on every rank)");
    });
  }

  void announce() {
    if (mpi_->rank() != 0) return;
    spdlog::info("shardtune {} | {} | {}", SHARDTUNE_VERSION, mpi_->describe(), grid_->describe());
    const auto warning = parallel::tp_span_warning(grid_->dims(), mpi_->node_of_rank());
    if (!warning.empty()) spdlog::warn("{}", warning);
    std::cout << "# resolved configuration\n" << config_.to_ini() << std::flush;
  }

  const Command& command_;
  std::vector<std::string> args_;
  const TestHooks& hooks_;
  std::optional<MpiRuntime> mpi_;
  Config config_;
  std::string help_;
  std::optional<parallel::RankGrid> grid_;
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace

namespace {

int dispatch(int argc, char** argv, const TestHooks& hooks) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(usage().c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? kUserErrorExitCode : 0;
  }
  // Hidden: docs/cli.md is this output (tests/docs.cmake checks that it is current).
  if (!std::strcmp(argv[1], "--help-markdown")) {
    std::fputs(cli_reference_markdown().c_str(), stdout);
    return 0;
  }
  const Command* command = find_command(argv[1]);
  if (!command) {
    print_error(std::string("unknown command '") + argv[1] + "'");
    std::fputs(usage().c_str(), stderr);
    return kUserErrorExitCode;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command->standalone) return run_standalone(*command, args);
  Run run(*command, std::move(args), hooks);
  return run.execute(&argc, &argv);
}

}  // namespace

int run_cli(int argc, char** argv, const TestHooks& hooks) {
  const int code = dispatch(argc, argv, hooks);
  if (io::hdf5_close_failed()) {
    // MPI is finalised and the error reported; libhdf5's exit handler would crash on the file
    // whose close failed (io/checkpoint.h), so end here with the exit code.
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}

}  // namespace shardtune::launch
