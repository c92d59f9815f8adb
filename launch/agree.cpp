#include "launch/agree.h"

#include <unistd.h>

#include <c10/util/Exception.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "base/env.h"
#include "base/errors.h"
#include "launch/bootstrap.h"
#include "launch/progress.h"
#include "launch/signals.h"

namespace shardtune::launch {

int exit_code_of(const std::exception& e) {
  if (const auto* agreed = dynamic_cast<const AgreedError*>(&e)) return agreed->code();
  if (dynamic_cast<const NonFiniteError*>(&e) != nullptr) return kNonFiniteExitCode;
  // A filesystem error names a path the user gave or the state of their disk (a symlink loop,
  // permissions, no space): the user's to fix, like a UserError.
  if (dynamic_cast<const std::filesystem::filesystem_error*>(&e) != nullptr) {
    return kUserErrorExitCode;
  }
  return dynamic_cast<const UserError*>(&e) != nullptr ? kUserErrorExitCode : 1;
}

std::string one_line(std::string_view message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
    message.remove_suffix(1);
  }
  std::string out;
  out.reserve(message.size());
  for (const char ch : message) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

std::string message_of(const std::exception& e) {
  // c10::Error::what() appends "Exception raised from ... frame #0 ..." (the C++ backtrace).
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = torch_error ? torch_error->what_without_backtrace() : e.what();
  if (torch_error) {
    // LibTorch's message may still span lines (its own context lines): the first one says it.
    text = text.substr(0, text.find('\n'));
  }
  const bool user = exit_code_of(e) != 1;
  return one_line(user ? text : "internal error: " + text);
}

void print_error(const std::string& message, int rank) {
  progress::clear();  // the error starts its own line on a terminal
  std::fflush(stdout);
  const std::string where = rank >= 0 ? " on rank " + std::to_string(rank) : "";
  std::fprintf(stderr, "shardtune: error%s: %s\n", where.c_str(), one_line(message).c_str());
  std::fflush(stderr);
}

namespace {

// One MAX all-reduce: {world - lowest failing rank (0 = none), worst code, stop signal}.
struct Verdict {
  int failing = -1;  // lowest failing rank, -1 when none
  int code = 0;
  int stop = 0;
};

Verdict reduce_verdict(parallel::Communicator& world, int code) {
  auto t = torch::tensor({code ? world.size() - world.rank() : 0, code, stop_signal()},
                         torch::kInt);
  world.all_reduce(t, parallel::ReduceOp::kMax);
  Verdict v;
  const int lowest = t[0].item<int>();
  v.failing = lowest ? world.size() - lowest : -1;
  v.code = t[1].item<int>();
  v.stop = t[2].item<int>();
  return v;
}

// This rank's failure (null = none) reduced over `world`; the lowest failing rank prints its
// message.
Verdict settle(parallel::Communicator& world, const std::exception_ptr& error) {
  std::string message;
  int code = 0;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      code = exit_code_of(e);
      message = message_of(e);
    }
  }
  const Verdict v = reduce_verdict(world, code);
  if (v.failing >= 0 && world.rank() == v.failing) {
    print_error(message, world.size() > 1 ? v.failing : -1);
  }
  return v;
}

}  // namespace

int agree(parallel::Communicator& world, const std::function<void()>& body) {
  std::exception_ptr error;
  try {
    body();
  } catch (const std::exception&) {
    error = std::current_exception();
  }
  const Verdict v = settle(world, error);
  if (v.failing >= 0) return v.code;
  if (v.stop != 0) {
    if (world.rank() == 0) announce_stop(v.stop, "during set-up; nothing was saved");
    return kStoppedExitCode;
  }
  return 0;
}

int agree_at_boundary(parallel::Communicator& world, const std::exception_ptr& error) {
  const Verdict v = settle(world, error);
  if (v.failing >= 0) throw AgreedError(v.code);
  return v.stop;
}

int run_or_abort(parallel::Communicator& world, const std::function<void()>& body) {
  try {
    body();
  } catch (const AgreedError& e) {
    return e.code();
  } catch (const std::exception& e) {
    const int code = exit_code_of(e);
    print_error(message_of(e), world.size() > 1 ? world.rank() : -1);
    if (world.size() > 1) quiet_abort(code);
    return code;
  }
  return 0;
}

void quiet_abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; under Slurm's srun (SLURM_STEP_ID) a rank that
  // merely exits may leave the others waiting, so MPI_Abort ends them.
  if (base::read_env(base::kEnvOmpiWorldSize) && !base::read_env(base::kEnvSlurmStepId)) {
    ::_exit(code);
  }
  abort_all(code);
}

}  // namespace shardtune::launch
